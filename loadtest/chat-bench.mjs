// Chat throughput end to end: N signed-in app clients in N sessions send chat messages as fast as
// `chat_saved` answers allow (a window of W unanswered each) for D seconds; prints chat messages
// acknowledged per second and the send → chat_saved latency percentiles.
//
//   node loadtest/chat-bench.mjs http://127.0.0.1:5000 [clients=20] [window=16] [seconds=20]
//
// The server needs `--chat-messages-per-min 0`, `--max-messages-per-sec`/`--message-burst` raised
// (a window of fast acknowledgements passes the default 300 messages/s per connection, which
// closes the socket), and `--rate-limit-requests 0 --register-rate-limit-requests 0` for the sign-ups.
import { WebSocket, post as postTo, appFrame, appJson } from './app-wire.mjs'

const [base = 'http://127.0.0.1:5000', clients = '20', window = '16', seconds = '20'] = process.argv.slice(2)
const N = Number(clients), W = Number(window), D = Number(seconds) * 1000

const post = (path, body, token) => postTo(base, path, body, token)

const latencies = []
let acked = 0, measuring = false, stop = false
const run = process.pid

async function client (k) {
  const name = `cb${run}x${k}`
  const user = await post('/api/auth/register', { username: name, email: `${name}@example.com`, password: 'correct horse battery' })
  const session = await post('/api/sessions', { title: 'chat bench' }, user.accessToken)
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/${session.id}?app=1&token=${user.accessToken}`)
  ws.binaryType = 'nodebuffer'
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject) })
  const sent = new Map()
  let next = 0
  const send = () => {
    if (stop) return
    const nonce = `${k}-${next++}`
    sent.set(nonce, process.hrtime.bigint())
    ws.send(appFrame({ type: 'chat', text: `message ${nonce}`, nonce }))
  }
  const done = new Promise(resolve => {
    ws.on('message', data => {
      const json = appJson(data)
      if (!json || !json.nonce || !sent.has(json.nonce)) return
      if (json.type === 'error') throw new Error(`refused: ${JSON.stringify(json)}`)
      if (json.type !== 'chat_saved') return
      const t = sent.get(json.nonce)
      sent.delete(json.nonce)
      if (measuring) { acked++; latencies.push(Number(process.hrtime.bigint() - t) / 1e6) }
      if (stop && sent.size === 0) resolve()
      send()
    })
  })
  for (let i = 0; i < W; i++) send()
  return { ws, done }
}

const started = await Promise.all(Array.from({ length: N }, (_, k) => client(k)))
await new Promise(resolve => setTimeout(resolve, 2000)) // warm-up
measuring = true
const t0 = Date.now()
await new Promise(resolve => setTimeout(resolve, D))
measuring = false
const elapsed = (Date.now() - t0) / 1000
stop = true
await Promise.race([Promise.all(started.map(s => s.done)), new Promise(resolve => setTimeout(resolve, 10000))])
latencies.sort((a, b) => a - b)
const pct = p => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(2)
console.log(`chat: ${N} clients x ${W} in flight, ${elapsed.toFixed(1)} s: ${(acked / elapsed).toFixed(0)} chat_saved/s; latency ms p50 ${pct(0.5)} p90 ${pct(0.9)} p99 ${pct(0.99)} max ${latencies.at(-1).toFixed(2)}`)
for (const s of started) s.ws.close()
process.exit(0)
