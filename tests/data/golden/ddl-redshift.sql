-- app.Launch: schema version 1
CREATE TABLE IF NOT EXISTS "app_launch" (
    "id" VARCHAR(512) NOT NULL,
    "event" VARCHAR(128) NOT NULL,
    "ts" TIMESTAMPTZ,
    "received_at" TIMESTAMPTZ NOT NULL,
    "channel" VARCHAR(64),
    "cold_start" BOOLEAN,
    "duration_ms" BIGINT,
    "context" SUPER,
    "data" SUPER NOT NULL,
    PRIMARY KEY ("id")
)
SORTKEY ("received_at");

-- checkout: schema version 2 (columns from all 2 versions)
CREATE TABLE IF NOT EXISTS "checkout" (
    "id" VARCHAR(512) NOT NULL,
    "event" VARCHAR(128) NOT NULL,
    "ts" TIMESTAMPTZ,
    "received_at" TIMESTAMPTZ NOT NULL,
    "channel" VARCHAR(64),
    "user_id" VARCHAR(256),
    "phone" VARCHAR(65535),
    "coupon" VARCHAR(128),
    "revenue" DOUBLE PRECISION,
    "is_first_order" BOOLEAN,
    "properties" SUPER,
    "data" SUPER NOT NULL,
    PRIMARY KEY ("id")
)
SORTKEY ("received_at");

-- page_view: schema version 1
CREATE TABLE IF NOT EXISTS "page_view" (
    "id" VARCHAR(512) NOT NULL,
    "event" VARCHAR(128) NOT NULL,
    "ts" TIMESTAMPTZ,
    "received_at" TIMESTAMPTZ NOT NULL,
    "channel" VARCHAR(64),
    "url" VARCHAR(8192),
    "pagetitle" VARCHAR(65535),
    "referrer-url" VARCHAR(65535),
    "scroll_depth" BIGINT,
    "tags" SUPER,
    "anything" SUPER,
    "mixed" SUPER,
    "schema_version" BIGINT,
    "data" SUPER NOT NULL,
    PRIMARY KEY ("id")
)
SORTKEY ("received_at");
