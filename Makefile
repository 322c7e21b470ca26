# sluice — one non-recursive Makefile. Objects go to $(BUILD), binaries to
# $(BIN). `make asan` rebuilds everything with sanitizers in build/asan.

BUILD ?= build
BIN ?= bin
CC ?= cc
OPT ?= -O2 -g
SAN ?=
PKGS := jansson libzstd zlib libuv hiredis libxxhash libcurl libpcre2-8 libsodium libpq expat cmocka

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wformat=2
ifeq ($(CI),true)
WARN += -Werror
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION := 0.1.0
CPPFLAGS += -I. -D_GNU_SOURCE -DSLUICE_VERSION=\"$(VERSION)\"
CFLAGS += -std=c11 $(OPT) $(WARN) $(SAN) -MMD -MP $(PKG_CFLAGS)
LDFLAGS += $(SAN)
# http-parser ships no pkg-config file on Debian.
LDLIBS += $(PKG_LIBS) -lhttp_parser -lpthread -lm

# LIB_ONLY="err mem buf ..." builds the library from those modules alone
# (handy while a module next door is half written).
LIB_SRC := $(if $(LIB_ONLY),$(LIB_ONLY:%=libpipe/%.c),$(wildcard libpipe/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB := $(BUILD)/libpipe.a

# Each stages/<name>/ builds $(BUILD)/stages/lib<name>.a from its sources but
# main.c, for its program and for the unit tests (tests/unit/test_<name>_*.c
# link it). A directory with a main.c is the program bin/sluice-<name>; the
# loader has none: sluicectl links libloader.a (`sluicectl load`).
STAGE_DIRS := $(notdir $(wildcard stages/*))
STAGES := $(patsubst stages/%/main.c,%,$(wildcard stages/*/main.c))
STAGE_BINS := $(STAGES:%=$(BIN)/sluice-%)
stage_lib = $(BUILD)/stages/lib$(1).a
CTL_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/sluicectl/*.c))
PROGRAMS := $(STAGE_BINS) $(BIN)/sluicectl

# Test support code shared by unit and contract tests.
TSUP_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/support/*.c))
TEST_SRC := $(wildcard tests/unit/test_*.c tests/contract/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_SRC := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(BENCH_SRC))
# Every libFuzzer target is also a unit test without libFuzzer:
# test_seeds_<name> runs it over tests/fuzz/seeds/<name>/ (seeds_main.c).
SEED_BINS := $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/tests/unit/test_seeds_%,\
    $(wildcard tests/fuzz/fuzz_*.c))

.PHONY: all programs tests deps check test asan demo bench chaos fuzz lint clean
# Keep test objects: they are intermediate files of the pattern rules.
.SECONDARY:
all: programs tests

programs: $(PROGRAMS)
tests: $(TEST_BINS) $(BENCH_BINS) $(SEED_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

define stage_lib_rule
$(call stage_lib,$(1)): $(patsubst %.c,$(BUILD)/%.o,$(filter-out %/main.c,$(wildcard stages/$(1)/*.c)))
	@rm -f $$@
	ar rcs $$@ $$^
$(BUILD)/tests/unit/test_$(1)_%: $(BUILD)/tests/unit/test_$(1)_%.o $(TSUP_OBJ) $(call stage_lib,$(1)) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(STAGE_DIRS),$(eval $(call stage_lib_rule,$(s))))

define stage_rule
$(BIN)/sluice-$(1): $(BUILD)/stages/$(1)/main.o $(call stage_lib,$(1)) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(STAGES),$(eval $(call stage_rule,$(s))))

$(BIN)/sluicectl: $(CTL_OBJ) $(call stage_lib,loader) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# bench_collide times the splitter's routing pass itself.
$(BUILD)/tests/bench/bench_collide: $(BUILD)/tests/bench/bench_collide.o \
    $(call stage_lib,splitter) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The SDK translators' targets call into the filter's library.
$(BUILD)/tests/unit/test_seeds_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/seeds_main.o \
    $(TSUP_OBJ) $(call stage_lib,filter) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)
# (objects before the archives: the extra prerequisites come last in $^)
$(BUILD)/tests/unit/test_seeds_redrive: $(BUILD)/tools/sluicectl/redrive.o \
    $(BUILD)/tools/sluicectl/ctl.o

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TSUP_OBJ) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# deps: the Debian packages a build needs (tools/install-deps.sh installs
# only what is missing; it needs root the first time).
deps:
	@tools/install-deps.sh build

check: programs tests
	@BIN=$(BIN) BUILD=$(BUILD) tests/run.sh

test:
	@tools/install-deps.sh test
	@$(MAKE) --no-print-directory check

asan:
	@tools/install-deps.sh test
	@$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin OPT="-O1 -g" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" check

demo:
	@tools/install-deps.sh demo
	@$(MAKE) --no-print-directory programs
	@BIN=$(BIN) tools/demo.sh

bench:
	@tools/install-deps.sh bench
	@$(MAKE) --no-print-directory programs tests
	@BIN=$(BIN) BUILD=$(BUILD) tests/bench/run.sh

# chaos: the kill and crash tests with many more kills and events than `make
# test`, on the embedded default (s3rver is too slow for 200,000 events; the
# S3 + Redis crash test runs in `make test`).
chaos:
	@tools/install-deps.sh test
	@$(MAKE) --no-print-directory programs tests
	@KILL_ROUNDS=$${KILL_ROUNDS:-80} KILL_EVENTS=$${KILL_EVENTS:-200000} \
	    CRASH_KILLS=$${CRASH_KILLS:-200} CRASH_EVENTS=$${CRASH_EVENTS:-200000} TESTS='kill|crash' \
	    SLUICE_TEST_BACKENDS=$${SLUICE_TEST_BACKENDS:-fs} \
	    BIN=$(BIN) BUILD=$(BUILD) tests/run.sh

# fuzz: libFuzzer over the parsers (clang), FUZZ_SECONDS each. fuzz_event
# is differential: it aborts when the fast path and jansson disagree;
# fuzz_json_simd when the scanner's SSE2 and portable paths do.
FUZZ_SECONDS ?= 60
FUZZ_LIB := $(patsubst %,libpipe/%.c,err mem buf log clock ndjson ndjson_body event)
# The filter's SDK protocol translators, built alone for their fuzz targets.
FUZZ_SDK := $(patsubst %,stages/filter/%.c,filter_segment filter_snowplow filter_compat) \
    libpipe/url.c
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -I. -D_GNU_SOURCE $(PKG_CFLAGS)
# Targets linked with the whole library, built with the fuzzer's
# instrumentation in build/fuzz/obj: stored bytes (de-duplication index,
# manifests, schema files, the sluice record, object keys listed from the
# store, the local lease backend's lease files), config files (sizes,
# durations, retention rules), the time parser, the store URL, and the HTTP
# server (a real one on loopback, fed one connection per input).
FUZZ_PIPE_TARGETS := dedup_index manifest schema ts store_url url zrecord keys lease_local conf \
    httpd
fuzz:
	@tools/install-deps.sh fuzz
	@mkdir -p build/fuzz/corpus-event build/fuzz/corpus-body build/fuzz/corpus-aws-xml \
	    build/fuzz/corpus-segment build/fuzz/corpus-snowplow build/fuzz/corpus-gunzip \
	    build/fuzz/corpus-json-simd
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_event.c tests/support/event_ref.c $(FUZZ_LIB) \
	    -ljansson -lxxhash -o build/fuzz/fuzz_event
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_body.c $(FUZZ_LIB) -lxxhash -o build/fuzz/fuzz_body
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_json_simd.c tests/support/json_diff.c $(FUZZ_LIB) -lxxhash \
	    -o build/fuzz/fuzz_json_simd
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_aws_xml.c libpipe/err.c libpipe/mem.c libpipe/aws_xml.c \
	    -lexpat -o build/fuzz/fuzz_aws_xml
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_segment.c $(FUZZ_SDK) $(FUZZ_LIB) -ljansson -lsodium \
	    -lxxhash -lcurl -o build/fuzz/fuzz_segment
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_snowplow.c $(FUZZ_SDK) $(FUZZ_LIB) -ljansson -lsodium \
	    -lxxhash -lcurl -o build/fuzz/fuzz_snowplow
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_gunzip.c $(FUZZ_LIB) libpipe/codec.c -lzstd -lz -lxxhash \
	    -o build/fuzz/fuzz_gunzip
	build/fuzz/fuzz_event -max_total_time=$(FUZZ_SECONDS) -max_len=2048 \
	    build/fuzz/corpus-event tests/fuzz/seeds/event
	build/fuzz/fuzz_body -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    build/fuzz/corpus-body tests/fuzz/seeds/body
	build/fuzz/fuzz_json_simd -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    build/fuzz/corpus-json-simd tests/fuzz/seeds/json_simd
	build/fuzz/fuzz_aws_xml -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    build/fuzz/corpus-aws-xml tests/fuzz/seeds/aws_xml
	build/fuzz/fuzz_segment -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    build/fuzz/corpus-segment tests/fuzz/seeds/segment
	build/fuzz/fuzz_snowplow -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    build/fuzz/corpus-snowplow tests/fuzz/seeds/snowplow
	build/fuzz/fuzz_gunzip -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    build/fuzz/corpus-gunzip tests/fuzz/seeds/gunzip
	@$(MAKE) --no-print-directory BUILD=build/fuzz/obj CC=clang OPT="-g -O1" CI= \
	    SAN="-fsanitize=fuzzer-no-link,address,undefined" build/fuzz/obj/libpipe.a
	for t in $(FUZZ_PIPE_TARGETS); do mkdir -p build/fuzz/corpus-$$t && \
	    clang $(FUZZ_FLAGS) tests/fuzz/fuzz_$$t.c build/fuzz/obj/libpipe.a $(LDLIBS) \
	        -o build/fuzz/fuzz_$$t || exit 1; done
	for t in $(FUZZ_PIPE_TARGETS); do build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=8192 -artifact_prefix=build/fuzz/$$t- build/fuzz/corpus-$$t tests/fuzz/seeds/$$t \
	    || exit 1; done
	@mkdir -p build/fuzz/corpus-awscreds build/fuzz/corpus-redrive
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_awscreds.c tests/support/http_canned.c \
	    tests/support/testutil.c build/fuzz/obj/libpipe.a $(LDLIBS) -o build/fuzz/fuzz_awscreds
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_redrive.c tools/sluicectl/redrive.c tools/sluicectl/ctl.c \
	    tests/support/testutil.c build/fuzz/obj/libpipe.a $(LDLIBS) -o build/fuzz/fuzz_redrive
	build/fuzz/fuzz_awscreds -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    -artifact_prefix=build/fuzz/awscreds- build/fuzz/corpus-awscreds tests/fuzz/seeds/awscreds
	build/fuzz/fuzz_redrive -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	    -artifact_prefix=build/fuzz/redrive- build/fuzz/corpus-redrive tests/fuzz/seeds/redrive

lint:
	@tools/install-deps.sh lint
	clang-format --dry-run -Werror $(wildcard libpipe/*.[ch] stages/*/*.[ch] tools/sluicectl/*.[ch])
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --suppress=missingIncludeSystem -I. libpipe stages tools/sluicectl

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# install / uninstall: the programs, the systemd units (paths rewritten for
# PREFIX and SYSCONFDIR), the example configuration (sluice.json only if
# there is none yet), the monitoring files and the runbook. DESTDIR stages
# the tree for a package: make install DESTDIR=/tmp/pkg PREFIX=/usr
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= $(PREFIX)/share/sluice
DOCDIR ?= $(PREFIX)/share/doc/sluice
UNITS := $(wildcard deploy/systemd/*.service deploy/systemd/*.timer deploy/systemd/*.target)
.PHONY: install uninstall
install: programs
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/sluice \
	    $(DESTDIR)$(DATADIR)/prometheus $(DESTDIR)$(DATADIR)/grafana $(DESTDIR)$(DOCDIR)
	install -m 0755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	for u in $(UNITS); do \
	    sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/sluice/|$(SYSCONFDIR)/sluice/|g' \
	        -e 's|/usr/local/share/doc/sluice/|$(DOCDIR)/|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/} && \
	    chmod 0644 $(DESTDIR)$(UNITDIR)/$${u##*/} || exit 1; done
	install -m 0644 deploy/systemd/sluice.json $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.json.example
	[ -e $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.json ] || \
	    install -m 0644 deploy/systemd/sluice.json $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.json
	install -m 0644 deploy/prometheus/*.yml $(DESTDIR)$(DATADIR)/prometheus/
	install -m 0644 deploy/grafana/sluice.json $(DESTDIR)$(DATADIR)/grafana/
	install -m 0644 docs/runbook.md README.md $(DESTDIR)$(DOCDIR)/

# uninstall keeps $(SYSCONFDIR)/sluice/sluice.json (the operator's).
uninstall:
	rm -f $(PROGRAMS:$(BIN)/%=$(DESTDIR)$(BINDIR)/%) $(UNITS:deploy/systemd/%=$(DESTDIR)$(UNITDIR)/%) \
	    $(DESTDIR)$(SYSCONFDIR)/sluice/sluice.json.example
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
