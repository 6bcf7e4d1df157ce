// Code execution end to end, as a client sees it: submit (`run` over the socket) → first
// `run_output` → `run_exit`, through the server and its sandbox.
//
//   node loadtest/exec-bench.mjs http://127.0.0.1:5000 [mode=sequential|sustained] [runs=40] [concurrency=4]
//
// sequential: one run at a time, each waiting `gap` ms (default 400) for the warm pool to refill:
//   the first-byte latency of a warm container (or cold with `--exec-pool-size 0`).
// sustained: `concurrency` clients each keep one run going for `runs` runs in all: runs/s at the cap.
// The program is python `print('x')`. The server needs `--exec-runs-per-min 0` and, for sign-ups,
// `--rate-limit-requests 0 --register-rate-limit-requests 0`.
import { WebSocket, post as postTo, appFrame, appJson } from './app-wire.mjs'

const [base = 'http://127.0.0.1:5000', mode = 'sequential', runsArg = '40', concurrencyArg = '4', gapArg = '400'] =
  process.argv.slice(2)
const RUNS = Number(runsArg), C = mode === 'sustained' ? Number(concurrencyArg) : 1, GAP = Number(gapArg)

const post = (path, body, token) => postTo(base, path, body, token)

const name = `eb${process.pid}`
const user = await post('/api/auth/register', { username: name, email: `${name}@example.com`, password: 'correct horse battery' })
const session = await post('/api/sessions', { title: 'exec bench', language: 'python' }, user.accessToken)
const firstByte = [], total = []
let started = 0, finished = 0

async function client (k) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/${session.id}?app=1&token=${user.accessToken}`)
  ws.binaryType = 'nodebuffer'
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject) })
  const pending = new Map() // nonce → t0, then job → { t0, first }
  const jobs = new Map()
  let resolveRun
  ws.on('message', data => {
    const json = appJson(data)
    if (!json) return
    const now = process.hrtime.bigint()
    if (json.type === 'error' && pending.has(json.nonce)) throw new Error(`refused: ${JSON.stringify(json)}`)
    if (json.type === 'run_queued' && pending.has(json.nonce)) {
      jobs.set(json.job, { t0: pending.get(json.nonce), first: null })
      pending.delete(json.nonce)
    }
    const job = jobs.get(json.job)
    if (!job) return
    if (json.type === 'run_output' && job.first === null) job.first = now
    if (json.type === 'run_exit') {
      if (json.exit_code !== 0) throw new Error(`run failed: ${JSON.stringify(json)}`)
      firstByte.push(Number(job.first - job.t0) / 1e6)
      total.push(Number(now - job.t0) / 1e6)
      jobs.delete(json.job)
      finished++
      resolveRun()
    }
  })
  while (started < RUNS) {
    const nonce = `${k}-${started++}`
    const done = new Promise(resolve => { resolveRun = resolve })
    pending.set(nonce, process.hrtime.bigint())
    ws.send(appFrame({ type: 'run', nonce, code: "print('x')" }))
    await done
    if (mode === 'sequential') await new Promise(resolve => setTimeout(resolve, GAP))
  }
  ws.close()
}

const t0 = Date.now()
await Promise.all(Array.from({ length: C }, (_, k) => client(k)))
const elapsed = (Date.now() - t0) / 1000
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))].toFixed(1) }
console.log(`exec ${mode}: ${finished} runs, ${C} at once, ${elapsed.toFixed(1)} s${mode === 'sustained' ? `: ${(finished / elapsed).toFixed(1)} runs/s` : ''}; ` +
  `submit → first byte ms p50 ${pct(firstByte, 0.5)} p95 ${pct(firstByte, 0.95)} max ${pct(firstByte, 1)}; ` +
  `submit → exit ms p50 ${pct(total, 0.5)} p95 ${pct(total, 0.95)}`)
process.exit(0)
