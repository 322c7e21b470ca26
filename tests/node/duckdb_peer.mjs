// duckdb_peer.mjs — the peer of the whole-pipeline bench (tests/bench/whole.sh):
// DuckDB with one thread doing sluice's raw/ → split/ job in one SQL statement.
// It reads every landed zstd NDJSON object under --input, keeps the lines that
// are JSON objects with a string event, a string id and a ts (an RFC 3339
// string or epoch milliseconds, as sluice accepts), keeps one line per
// (event, id) (client retries repeat both), and writes the kept lines verbatim
// as zstd NDJSON partitioned by event type and the date and hour of ts (UTC)
// under --output. COPY ... (FORMAT json) does not take PARTITION_BY
// (duckdb/duckdb#14927); it is DuckDB's CSV writer underneath, so the statement
// uses that writer directly with quoting off and one column, the line itself.
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
    SELECT DISTINCT ON (event, id) e, event, strftime(t, '%Y-%m-%d') AS dt, strftime(t, '%H') AS hr
    FROM (
      SELECT e, v[1] ->> '$' AS event, v[2] ->> '$' AS id,
             CASE WHEN json_type(v[3]) = 'VARCHAR' THEN TRY_CAST(v[3] ->> '$' AS TIMESTAMPTZ)
                  WHEN json_type(v[3]) IN ('UBIGINT', 'BIGINT')
                    THEN epoch_ms(TRY_CAST(v[3] AS BIGINT))
             END::TIMESTAMP AS t
      FROM (SELECT json AS e, json_extract(json, ['$.event', '$.id', '$.ts']) AS v
            FROM read_ndjson_objects(${quote(values.input + '/**/*.zst')},
                                     compression = 'zstd', ignore_errors = true))
      WHERE json_type(v[1]) = 'VARCHAR' AND json_type(v[2]) = 'VARCHAR')
    WHERE event <> '' AND t IS NOT NULL
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
