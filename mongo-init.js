// mongo-init.js: CodeCrafter's MongoDB collections, indexes and two development users.
//
// Runs in the official mongo image's /docker-entrypoint-initdb.d on the first start, already
// authenticated as root, or by hand:
//
//   mongosh "mongodb://localhost:27017" --file mongo-init.js
//
// The database is `codecrafter`, or the MONGO_DB environment variable (the storage tests run the
// script against a scratch database that way).
//
// Safe to run again: existing collections and indexes are kept, and the users are inserted only
// if no user has their email, so a second run changes nothing.
//
// The indexes must equal storage::mongo_index_plan() (storage/src/mongo/indexes.rs): the same
// names, keys, unique flags and TTL, as the server also ensures them at startup and MongoDB
// refuses an index whose name exists with other options. storage/tests/mongo_init.rs checks the
// two against each other, both ways. They are the seeds' 13 indexes adapted to the field names of
// the seeds' own models (users.lastLoginAt, sessions.collaborators.userId, sessions.status), plus
// what snapshots, chat messages and executions need.

const dbName = (typeof process !== "undefined" && process.env.MONGO_DB) || "codecrafter";
const target = db.getSiblingDB(dbName);

const collections = ["users", "sessions", "logs", "snapshots", "snapshot_chunks", "messages", "executions"];
const existingCollections = target.getCollectionNames();
for (const name of collections) {
  if (!existingCollections.includes(name)) {
    target.createCollection(name);
  }
}

// storage::model::LOG_RETENTION: 30 days.
const LOG_RETENTION_SECONDS = 30 * 24 * 60 * 60;

// [collection, name, keys, options]
const indexes = [
  // users (seeds: 4)
  ["users", "users_email_unique", { email: 1 }, { unique: true }],
  ["users", "users_username_unique", { username: 1 }, { unique: true }],
  ["users", "users_createdAt", { createdAt: 1 }, {}],
  ["users", "users_lastLoginAt", { lastLoginAt: 1 }, {}],
  // sessions (seeds: 5)
  ["sessions", "sessions_owner_createdAt", { owner: 1, createdAt: -1 }, {}],
  ["sessions", "sessions_isPublic_updatedAt", { isPublic: 1, updatedAt: -1 }, {}],
  ["sessions", "sessions_createdAt", { createdAt: 1 }, {}],
  ["sessions", "sessions_collaborators_userId", { "collaborators.userId": 1 }, {}],
  ["sessions", "sessions_status", { status: 1 }, {}],
  // logs (seeds: 4, the first removing entries after 30 days)
  ["logs", "logs_timestamp_ttl", { timestamp: 1 }, { expireAfterSeconds: LOG_RETENTION_SECONDS }],
  ["logs", "logs_level_timestamp", { level: 1, timestamp: -1 }, {}],
  ["logs", "logs_userId_timestamp", { userId: 1, timestamp: -1 }, {}],
  ["logs", "logs_sessionId_timestamp", { sessionId: 1, timestamp: -1 }, {}],
  // a snapshot generation's chunks, in order
  ["snapshot_chunks", "snapshot_chunks_room_generation_index", { room: 1, generation: 1, index: 1 }, { unique: true }],
  // a session's newest messages and executions
  ["messages", "messages_sessionId_createdAt", { sessionId: 1, createdAt: -1 }, {}],
  ["executions", "executions_sessionId_createdAt", { sessionId: 1, createdAt: -1 }, {}],
];
for (const [collection, name, keys, options] of indexes) {
  target.getCollection(collection).createIndex(keys, Object.assign({ name: name }, options));
}

// The password of both users is "password": a bcrypt hash (cost 10), which the server accepts and
// replaces with an argon2id hash at the first login.
const PASSWORD_HASH = "$2b$10$Cbu9MmPqYC7evPBTcb.Hw.AaZ2qDbBA74zP.kPT8.TLyCrFZBQIOO";

// Inserts the user unless one with that email exists; true if it did.
function seedUser(user) {
  const now = new Date();
  const document = Object.assign(
    {
      password: PASSWORD_HASH,
      preferences: {
        theme: "dark",
        editorSettings: { fontSize: 14, tabSize: 2, wordWrap: true, autoSave: true },
        notifications: { email: true, browser: true, collaboratorJoined: true, sessionShared: true },
      },
      isActive: true,
      emailVerified: true,
      lastLoginAt: null,
      createdAt: now,
      updatedAt: now,
    },
    user
  );
  const result = target.users.updateOne({ email: user.email }, { $setOnInsert: document }, { upsert: true });
  return result.upsertedCount === 1;
}

const testUserCreated = seedUser({
  username: "testuser",
  email: "test@example.com",
  firstName: "Test",
  lastName: "User",
  role: "user",
});
const adminCreated = seedUser({
  username: "admin",
  email: "admin@example.com",
  firstName: "Admin",
  lastName: "User",
  role: "admin",
});

print("MongoDB initialization complete! (database " + dbName + ")");
print("Collections: " + collections.join(", "));
print("Indexes: " + indexes.length + " in place for optimal query performance");
print("Test user " + (testUserCreated ? "created" : "already present") + ": testuser / test@example.com");
print("Admin user " + (adminCreated ? "created" : "already present") + ": admin / admin@example.com");
