// Reads Parquet data files with DuckDB from npm (@duckdb/node-api), not
// twoway's embedded DuckDB: node read.js QUERY FILE... runs QUERY with the
// view t over the files and prints its rows as JSON.
const { DuckDBInstance } = require('@duckdb/node-api');

async function main() {
  const [query, ...files] = process.argv.slice(2);
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const list = files.map((f) => `'${f.replace(/'/g, "''")}'`).join(', ');
  await conn.run(`CREATE VIEW t AS SELECT * FROM read_parquet([${list}], union_by_name = true)`);
  const reader = await conn.runAndReadAll(query);
  const rows = reader.getRowsJson();
  process.stdout.write(JSON.stringify({ version: (await (await conn.runAndReadAll('select version()')).getRowsJson())[0][0], rows }) + '\n');
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
