// duckdb_peer.mjs — the peer of the whole-pipeline bench (tests/bench/whole.sh):
// DuckDB with one thread doing sluice's raw/ → split/ job in one SQL statement.
// It reads every landed zstd NDJSON object under --input, keeps the lines that
// are JSON objects with a string event, a string id and a ts that parses as a
// timestamp, keeps one row per (event, id) (client retries repeat both), and
// writes zstd NDJSON partitioned by event type, date and hour under --output.
// DuckDB's JSON writer writes one object per row; the event goes out verbatim
// as the value of its one column, "e" (the partition columns are the path).
//
//   node duckdb_peer.mjs --input DIR --output DIR
//
// Prints "user_s sys_s wall_s maxrss_kb" of this whole process
// (process.cpuUsage(): node, the DuckDB library and the statement), the same
// fields /usr/bin/time gives whole.sh for the sluice stages.
import { DuckDBInstance } from '@duckdb/node-api';
import { parseArgs } from 'node:util';

const t0 = process.hrtime.bigint();
const { values } = parseArgs({
  options: { input: { type: 'string' }, output: { type: 'string' } },
});
if (!values.input || !values.output) {
  console.error('usage: node duckdb_peer.mjs --input DIR --output DIR');
  process.exit(2);
}
const quote = (s) => `'${s.replaceAll("'", "''")}'`;

const db = await DuckDBInstance.create(':memory:', { threads: '1' });
const con = await db.connect();
await con.run('SET threads = 1');
await con.run("SET TimeZone = 'UTC'");
await con.run(`
  COPY (
    SELECT e, event, strftime(t, '%Y-%m-%d') AS dt, strftime(t, '%H') AS hr
    FROM (
      SELECT json AS e, json_extract_string(json, '$.event') AS event,
             json_extract_string(json, '$.id') AS id,
             CASE WHEN json_type(json, '$.ts') = 'VARCHAR'
                    THEN TRY_CAST(json_extract_string(json, '$.ts') AS TIMESTAMPTZ)
                  WHEN json_type(json, '$.ts') IN ('UBIGINT', 'BIGINT')
                    THEN epoch_ms(TRY_CAST(json_extract(json, '$.ts') AS BIGINT))
             END::TIMESTAMP AS t
      FROM read_ndjson_objects(${quote(values.input + '/**/*.zst')},
                               compression = 'zstd', ignore_errors = true)
      WHERE json_type(json) = 'OBJECT' AND json_type(json, '$.event') = 'VARCHAR'
        AND json_type(json, '$.id') = 'VARCHAR')
    WHERE event <> '' AND t IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY event, id) = 1
  ) TO ${quote(values.output)} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\t',
        COMPRESSION zstd, PARTITION_BY (event, dt, hr), FILE_EXTENSION 'ndjson.zst')`);
con.closeSync();
db.closeSync();

const cpu = process.cpuUsage();
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(
  (cpu.user / 1e6).toFixed(2),
  (cpu.system / 1e6).toFixed(2),
  wall.toFixed(2),
  process.resourceUsage().maxRSS,
);
