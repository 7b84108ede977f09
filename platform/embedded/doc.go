// Package embedded runs Parley's backing servers inside the current process,
// so that the all-in-one binary and the integration tests need nothing
// installed:
//
//   - MongoDB: FerretDB v1 (MongoDB wire protocol) over SQLite files in a
//     directory; data survives a restart on the same directory. Every
//     collection gets an extra SQLite index so FerretDB's lookups by _id
//     use an index (idindex.go), and each client gets a few connections
//     (SQLite has one writer at a time).
//   - NATS: nats-server with JetStream; streams survive a restart on the same
//     store directory.
//   - Redis: miniredis. Its data is EPHEMERAL: it lives in memory and is lost
//     on Close. That is acceptable because Parley keeps only presence, rate
//     limits and caches in Redis, all of which rebuild themselves. TTLs
//     age on a 250 ms ticker.
//
// Each backend is a small type with a constructor and Close; Start starts all
// three (or only those without an external URL) for the all-in-one.
package embedded
