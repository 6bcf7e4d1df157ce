// Shared plumbing for the end-to-end scripts run by server/tests/it/js_clients.rs.
//
// Every script is `node <script>.mjs <serverUrl> <room> [extra...]`, where serverUrl is
// `ws://HOST:PORT/ws` (y-websocket appends `/<room>` itself). A script prints exactly one JSON line
// on stdout (`{"ok":true,...}`) and exits 0, or writes `FAIL <script>: <why>` to stderr and exits 1.
// A watchdog timer makes every script fail on its own instead of hanging.

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

export { Y }

/** Default watchdog for a whole script. */
export const SCRIPT_TIMEOUT_MS = 30_000
/** Default wait for one condition. */
export const WAIT_MS = 10_000

let scriptName = 'script'

/** Print the failure and exit non-zero. Exits synchronously: nothing after it runs. */
export function fail (message) {
  const text = message instanceof Error ? (message.stack || message.message) : String(message)
  process.stderr.write(`FAIL ${scriptName}: ${text}\n`)
  process.exit(1)
}

/** Diagnostics that only show when the Rust test prints stderr (on failure). */
export function log (message) {
  process.stderr.write(`[${scriptName}] ${message}\n`)
}

/**
 * Run `body({ serverUrl, room, extra })` under a watchdog, print its result as one JSON line with
 * `ok: true` and the elapsed milliseconds, then exit 0. Any throw, rejection or timeout fails.
 */
export function run (name, body, { timeoutMs = SCRIPT_TIMEOUT_MS } = {}) {
  scriptName = name
  const [serverUrl, room, ...extra] = process.argv.slice(2)
  if (!serverUrl || !room) fail(`usage: node ${name}.mjs ws://HOST:PORT/ws ROOM [...]`)
  process.on('uncaughtException', fail)
  process.on('unhandledRejection', fail)
  // Referenced on purpose: it also keeps the process alive while we wait on the network.
  const watchdog = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs)
  const started = performance.now()
  body({ serverUrl, room, extra }).then(
    (result) => {
      clearTimeout(watchdog)
      const ms = Math.round(performance.now() - started)
      // Writes to a pipe are synchronous on Linux, so exiting right after loses nothing.
      process.stdout.write(JSON.stringify({ ok: true, script: name, ms, ...result }) + '\n')
      process.exit(0)
    },
    fail
  )
}

/**
 * A fresh Y.Doc synced through the real, unchanged y-websocket provider over the `ws` package.
 *
 * `disableBc: true` matters: in Node >= 18 `BroadcastChannel` is a global, and lib0 delivers its
 * messages synchronously between providers of the same room *in the same process*. Without it,
 * clients of one script would sync with each other without the server and the tests would prove
 * nothing about it.
 */
export function connect (serverUrl, room, { label = 'client', connect = true, params = {} } = {}) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, room, doc, {
    WebSocketPolyfill: WebSocket,
    disableBc: true,
    connect,
    params
  })
  const client = { label, doc, provider, awareness: provider.awareness, closes: [] }
  provider.on('connection-close', (event) => {
    // `null` means we closed it ourselves (disconnect/destroy); otherwise the server or network did.
    if (event) {
      client.closes.push({ code: event.code, reason: event.reason })
      log(`${label}: connection closed by the other side: code=${event.code} reason=${JSON.stringify(event.reason)}`)
    }
  })
  provider.on('connection-error', () => log(`${label}: connection error`))
  return client
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Poll `condition` every 5 ms; throw naming `what` (and `detail()`, if given) after `timeoutMs`. */
export async function waitFor (what, condition, { timeoutMs = WAIT_MS, detail } = {}) {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}${detail ? `\n${detail()}` : ''}`)
    }
    await sleep(5)
  }
}

/** Wait until the provider got the server's sync step 2 (the server's full diff is applied). */
export function waitSynced (client, timeoutMs = WAIT_MS) {
  return waitFor(`${client.label} synced with the server`, () => client.provider.synced, { timeoutMs })
}

/** The three shared roots every script uses, as plain JSON (roots are defined before reading). */
export function snapshot (doc) {
  return {
    text: doc.getText('text').toString(),
    map: doc.getMap('map').toJSON(),
    list: doc.getArray('list').toJSON()
  }
}

/** JSON with object keys sorted: Y.Map key order depends on arrival order, its content does not. */
export function canonical (value) {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
      : v
  )
}

/** Shorten long strings in failure messages. */
export function preview (value, max = 400) {
  const text = typeof value === 'string' ? value : canonical(value)
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} chars)`
}

/** A small seeded PRNG (mulberry32), so a failing interleaving can be replayed. */
export function prng (seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
