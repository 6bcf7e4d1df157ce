// The run panel: language and stdin, the Run button, the console the room's runs stream into
// (`run_started`, `run_output` in `seq` order, `run_exit`), and the session's run history.
import { h, fill, ago } from './dom.js'

const HISTORY_LIMIT = 10

export class RunPanel {
  constructor ({ api, room, session, parent }) {
    this.api = api
    this.room = room
    this.session = session
    this.runs = new Map() // job → { block, out, next seq, early chunks }
    this.requests = new Map() // nonce of a run we sent → its placeholder block
    this.language = h('select', { 'aria-label': 'Run language', 'data-testid': 'run-language' })
    this.stdin = h('textarea', { rows: 2, placeholder: 'stdin (optional)', 'aria-label': 'Standard input', 'data-testid': 'run-stdin' })
    this.button = h('button.primary', { 'data-testid': 'run', onclick: () => this.run() }, '▶ Run')
    this.console = h('div.console', { 'data-testid': 'console', 'aria-live': 'polite', tabIndex: 0 })
    this.history = h('ol.history', { 'data-testid': 'run-history' })
    fill(parent,
      h('div.run-controls', {}, h('h2', {}, 'Run'), this.language, this.button),
      h('details.stdin', {}, h('summary', {}, 'stdin'), this.stdin),
      this.console,
      h('details.history-box', { ontoggle: (e) => e.target.open && this.loadHistory() },
        h('summary', {}, 'Run history'), this.history))
    room.addEventListener('app', (e) => this.onApp(e.detail))
    this.loadLanguages()
    this.loadHistory()
  }

  setSession (session) {
    this.session = session
    this.canRun = session.canWrite
    this.update()
    if (!this.languagesLoaded) this.language.value = session.language
  }

  setConnected (connected) {
    this.connected = connected
    this.update()
  }

  update () {
    this.button.disabled = !this.connected || !this.canRun
    this.button.title = this.canRun ? '' : 'Read-only: you cannot run this session'
  }

  async loadLanguages () {
    try {
      const languages = await this.api.request('GET', '/api/execute/languages')
      fill(this.language, languages.map((l) => h('option', { value: l.id, disabled: !l.available },
        l.available ? `${l.name}${l.version ? ` ${l.version}` : ''}` : `${l.name} (unavailable)`)))
      this.languagesLoaded = true
      this.language.value = this.session.language
      if (!languages.some((l) => l.available)) {
        // No runner can take a run (no Docker daemon, or no runner images): say so up front.
        this.console.append(h('p.run-head', { 'data-testid': 'runs-unavailable' },
          'Runs are unavailable on this server right now (no Docker daemon or runner images reachable).'))
      }
    } catch {}
  }

  run () {
    const nonce = this.room.send({ type: 'run', language: this.language.value, stdin: this.stdin.value })
    if (!nonce) return
    const block = this.block(`${this.language.value} · queued…`)
    this.requests.set(nonce, block)
  }

  /** A run's block in the console: a heading, the output, and later its exit line. */
  block (heading) {
    const out = h('pre.output')
    const block = h('div.run-block', {}, h('div.run-head', {}, heading), out)
    this.console.append(block)
    this.scroll()
    return block
  }

  onApp (m) {
    if (m.type === 'run_queued') {
      const block = this.requests.get(m.nonce)
      if (!block) return
      this.requests.delete(m.nonce)
      block.dataset.job = m.job
      if (!this.runs.has(m.job)) this.runs.set(m.job, this.state(block))
    } else if (m.type === 'error' && this.requests.has(m.nonce)) {
      const block = this.requests.get(m.nonce)
      this.requests.delete(m.nonce)
      block.dataset.state = 'refused'
      block.querySelector('.run-head').textContent = `refused: ${m.message}`
    } else if (m.type === 'run_started') {
      const run = this.runs.get(m.job) ?? this.state(this.block(''))
      this.runs.set(m.job, run)
      run.block.dataset.job = m.job
      run.block.dataset.state = 'running'
      run.block.querySelector('.run-head').textContent = `${m.language} · run by ${m.user.username} · running…`
    } else if (m.type === 'run_output') {
      const run = this.runs.get(m.job) ?? this.adopt(m.job)
      this.output(run, m)
    } else if (m.type === 'run_exit') {
      const run = this.runs.get(m.job) ?? this.adopt(m.job)
      run.block.dataset.state = 'done'
      run.block.querySelector('.run-head').textContent = run.block.querySelector('.run-head').textContent.replace(' · running…', '')
      run.block.append(h('div.run-exit', { 'data-testid': 'run-exit' }, exitLine(m)))
      this.scroll()
      this.loadHistory()
    }
  }

  state (block) {
    return { block, out: block.querySelector('.output'), next: 0, early: new Map() }
  }

  /** A run we did not see start (joined mid-run: the server replays the output so far). */
  adopt (job) {
    const run = this.state(this.block('run in progress'))
    run.block.dataset.job = job
    this.runs.set(job, run)
    return run
  }

  /** Appends chunks in `seq` order, holding one that arrives early until the gap fills. */
  output (run, m) {
    if (m.seq < run.next) return
    run.early.set(m.seq, m)
    while (run.early.has(run.next)) {
      const chunk = run.early.get(run.next)
      run.early.delete(run.next)
      run.next++
      run.out.append(h(`span.${chunk.stream}`, {}, chunk.data))
    }
    this.scroll()
  }

  async loadHistory () {
    try {
      const page = await this.api.request('GET', `/api/execute/history/${this.session.id}?limit=${HISTORY_LIMIT}`)
      fill(this.history, page.executions.length === 0 ? h('li.muted', {}, 'No runs yet.') : page.executions.map((r) =>
        h('li', { dataset: { status: r.status } },
          h('button.link', { onclick: () => this.show(r) }, `${r.language} · ${r.status}${r.exitCode !== null && r.exitCode !== undefined ? ` (${r.exitCode})` : ''}`),
          h('span.muted', {}, `${r.durationMs ?? '–'} ms · ${ago(r.createdAt)}`))))
    } catch {}
  }

  /** A past run's stored output in the console. */
  show (record) {
    const block = this.block(`${record.language} · ${record.status} · from history`)
    const out = block.querySelector('.output')
    out.append(h('span.stdout', {}, record.stdout), h('span.stderr', {}, record.stderr))
    block.append(h('div.run-exit', {}, exitLine({
      exit_code: record.exitCode, duration_ms: record.durationMs ?? 0, timed_out: record.timedOut, oom_killed: record.oomKilled, output_truncated: record.outputTruncated, error: record.error
    })))
  }

  scroll () {
    this.console.scrollTop = this.console.scrollHeight
  }
}

function exitLine (m) {
  const parts = []
  if (m.error) parts.push(`failed: ${m.error}`)
  else if (m.timed_out) parts.push('timed out')
  else if (m.oom_killed) parts.push('out of memory')
  else parts.push(`exit ${m.exit_code ?? '?'}`)
  parts.push(`${m.duration_ms} ms`)
  if (m.output_truncated) parts.push('output truncated')
  return parts.join(' · ')
}
