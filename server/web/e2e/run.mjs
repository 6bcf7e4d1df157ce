// End-to-end test of the browser client in a real Chromium (Debian's, driven by playwright-core),
// against a real `codecrafter` process with Docker execution. Two people, Alice and Bob, in two
// browser contexts (and Carol, a viewer, in a third):
//   1. both type at once and converge; each sees the other's cursor and name
//   2. a chat message goes round trip and is marked delivered on `chat_saved`
//   3. a Python program printing over 2 s streams into both consoles before its exit
//   4. a viewer cannot type, and the Run button is off for her
//   5. an expired access token: Bob's connection drops (a blip: the page closes its socket) after
//      his token expired; the server refuses the reconnect (4401), the page refreshes the token
//      and reconnects by itself, and what he typed meanwhile arrives
//   6. the server is killed (SIGKILL, after "saved") and restarted on the same port once every
//      page's token has expired: the pages refresh (the embedded server journals its refresh
//      tokens) and reconnect by themselves, and what was typed before the kill and while it was
//      down is on both pages and in a fresh page; a chat message written while the server was
//      down waits and is delivered once. Then a sign-out in another tab: the open session asks to
//      sign in again over the session and keeps its document
//   7. the owner locks the session: an editor's typing is refused and his page turns read-only;
//      the owner changes a role and removes someone, whose open page is cut off and says so
//   8. sign out and back in; the owner deletes the session and the page still open on it says so
// Access tokens live 3 s here (plus the server's 5 s leeway), so every step also runs through
// token refreshes on the API and on the socket.
// Last, a run with stdin on a phone-sized screen, and a server without Docker.
// Screenshots of the main screens go to --artifacts. No fixed sleeps: every step waits for a
// condition with a deadline, and a failure screenshots every page before it exits 1.
//
// usage: node e2e/run.mjs --server PATH/TO/codecrafter --artifacts DIR
//        (DOCKER_HOST: the Docker daemon the server runs programs with; CHROMIUM: the browser,
//        default /usr/bin/chromium)
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium } from 'playwright-core'

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`)
  if (i < 0 || !process.argv[i + 1]) throw new Error(`usage: node e2e/run.mjs --server BIN --artifacts DIR (missing --${name})`)
  return process.argv[i + 1]
}
const serverBin = arg('server')
const artifacts = arg('artifacts')
mkdirSync(artifacts, { recursive: true })
const dataDir = mkdtempSync(join(tmpdir(), 'codecrafter-e2e-'))
const started = Date.now()
const log = (...a) => console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s]`, ...a)

// ---- the server process ------------------------------------------------------------------

let server = null
const ACCESS_TTL_SECS = 3
/** The server accepts a token this long past its expiry (`LEEWAY_SECS` in server/src/auth/tokens.rs). */
const LEEWAY_SECS = 5

/** Starts `codecrafter` on `bind`; resolves with the address it listens on. */
function startServer (bind) {
  return spawnServer(bind, dataDir, {}, (child) => { server = child })
}

/** A `codecrafter` on `bind` over `dir` with `env` added; `started(child)` gets the process. */
function spawnServer (bind, dir, env, started) {
  return new Promise((resolve, reject) => {
    const child = spawn(serverBin, ['--bind', bind, '--data-dir', dir, '--access-token-ttl-secs', String(ACCESS_TTL_SECS)], {
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn', ...env },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    started(child)
    const timer = setTimeout(() => reject(new Error('the server printed no "listening on" within 30 s')), 30_000)
    child.once('exit', (code, signal) => reject(new Error(`the server exited at start (${code ?? signal})`)))
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer)
      const addr = line.replace(/^listening on /, '')
      if (addr === line) reject(new Error(`unexpected first line: ${line}`))
      else resolve(addr)
    })
  })
}

function killServer (signal) {
  return new Promise((resolve) => {
    if (!server || server.exitCode !== null || server.signalCode !== null) return resolve()
    server.once('exit', () => resolve())
    server.kill(signal)
  })
}

// ---- waiting, failing --------------------------------------------------------------------

const pages = {}

/** Polls `check` (async, truthy = done) every 50 ms until `timeoutMs`; then fails with `what`. */
async function until (what, check, { timeoutMs = 15_000, detail } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check().catch(() => false)
    if (value) return value
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `: ${await detail().catch((e) => e.message)}` : ''}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function assert (condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}

async function shot (page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`) })
  log(`screenshot ${name}.png`)
}

// ---- what a page can do --------------------------------------------------------------------

const text = (page) => page.evaluate(() => window.codecrafter.text)
const status = (page) => page.evaluate(() => window.codecrafter.status)
const saveState = (page) => page.evaluate(() => window.codecrafter.saveState)
const accessToken = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('codecrafter.auth')).accessToken)
/** Whether the server refuses `token` by now: its `exp` plus the leeway has passed. */
const refused = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url')).exp + LEEWAY_SECS < Date.now() / 1000 - 1
const consoleText = (page) => page.locator('[data-testid=console]').innerText()

async function signUp (page, base, username) {
  await page.goto(base)
  await page.getByRole('button', { name: 'Create an account' }).click()
  await page.fill('input[name=username]', username)
  await page.fill('input[name=email]', `${username}@example.com`)
  await page.fill('input[name=password]', 'correct horse battery')
  await page.getByRole('button', { name: 'Create account' }).click()
  await page.getByRole('heading', { name: 'My sessions' }).waitFor()
}

/** Clicks into the editor at the end of the document. */
async function focusEnd (page) {
  await page.locator('[data-testid=editor]').click()
  await page.keyboard.press('Control+End')
}

/** A page's console errors and CSP violations: the test fails on any. */
function watch (page, name, problems) {
  page.on('console', (m) => {
    // Chromium logs every failed request (a 401 before a refresh, a refused connection while the
    // server is down): those are the test's doing. Script errors and CSP refusals are not.
    const expected = /WebSocket connection to .* failed|Failed to load resource/
    if (m.type() === 'error' && !expected.test(m.text())) problems.push(`${name}: ${m.text()}`)
  })
  page.on('pageerror', (e) => problems.push(`${name}: ${e.message}`))
}

// ---- the test ------------------------------------------------------------------------------

async function main () {
  const addr = await startServer('127.0.0.1:0')
  const base = `http://${addr}/`
  log(`server on ${addr}`)
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage']
  })
  const problems = []
  try {
    const open = async (name) => {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
      const page = await context.newPage()
      watch(page, name, problems)
      pages[name] = page
      return page
    }
    const alice = await open('alice')
    const bob = await open('bob')
    const suffix = Math.random().toString(36).slice(2, 7)
    const names = { alice: `alice_${suffix}`, bob: `bob_${suffix}`, carol: `carol_${suffix}` }

    // Accounts and a session shared with Bob as an editor.
    await alice.goto(base)
    await alice.getByRole('heading', { name: 'Sign in' }).waitFor()
    await shot(alice, 'sign-in')
    await signUp(alice, base, names.alice)
    await signUp(bob, base, names.bob)
    await alice.fill('input[name=title]', 'Pair programming')
    await alice.selectOption('select[name=language]', 'python')
    await alice.getByRole('button', { name: 'Create', exact: true }).click()
    await until('Alice in the session, live', async () => (await status(alice)) === 'connected')
    const sessionUrl = alice.url()
    log(`session ${sessionUrl}`)
    await alice.click('[data-testid=share]')
    await alice.fill('dialog input[name=who]', names.bob)
    await alice.selectOption('dialog select[name=role]', 'editor')
    await alice.click('dialog button[type=submit]')
    await alice.locator(`dialog li[data-user="${names.bob}"]`).waitFor()
    await shot(alice, 'share')
    await alice.getByRole('button', { name: 'Close' }).click()
    const opening = Date.now()
    await bob.goto(sessionUrl)
    await until('Bob in the session, live', async () => (await status(bob)) === 'connected')
    log(`Bob's page: from navigation to a live, synced session in ${Date.now() - opening} ms`)

    // 1. Concurrent typing converges; each sees the other's cursor and name.
    await focusEnd(alice)
    await focusEnd(bob)
    await Promise.all([
      alice.keyboard.type('alice_was_here = 1\n', { delay: 15 }),
      bob.keyboard.type('bob_was_here = 2\n', { delay: 15 })
    ])
    const converged = await until('both pages to converge on both edits', async () => {
      const [a, b] = [await text(alice), await text(bob)]
      return a === b && a.includes('alice_was_here = 1') && a.includes('bob_was_here = 2') && a
    }, { detail: async () => JSON.stringify([await text(alice), await text(bob)]) })
    log(`converged: ${JSON.stringify(converged)}`)
    await until('Alice to see Bob\'s cursor with his name', () =>
      alice.locator('.cm-ySelectionInfo', { hasText: names.bob }).count())
    await until('Bob to see Alice\'s cursor with her name', () =>
      bob.locator('.cm-ySelectionInfo', { hasText: names.alice }).count())
    await until('both in Alice\'s who-is-here list', async () =>
      (await alice.locator('[data-testid=presence] li').count()) === 2)

    // 2. Chat round trip: delivered for the sender (chat_saved), received by the other.
    await alice.fill('[data-testid=chat-input]', 'hello bob, run it?')
    await alice.press('[data-testid=chat-input]', 'Enter')
    await alice.locator('[data-testid=chat-messages] li[data-state=delivered]', { hasText: 'hello bob, run it?' }).waitFor({ timeout: 10_000 })
    await bob.locator('[data-testid=chat-messages] li', { hasText: 'hello bob, run it?' }).waitFor({ timeout: 10_000 })
    await bob.fill('[data-testid=chat-input]', 'go ahead')
    await bob.press('[data-testid=chat-input]', 'Enter')
    await alice.locator('[data-testid=chat-messages] li', { hasText: 'go ahead' }).waitFor({ timeout: 10_000 })

    // 3. A program that prints over 2 s streams into both consoles before it exits.
    await alice.locator('[data-testid=editor]').click()
    await alice.keyboard.press('Control+a')
    await alice.keyboard.insertText([
      'import time',
      'for i in range(5):',
      '    print(f"tick {i}", flush=True)',
      '    time.sleep(0.5)',
      'print("done")',
      ''
    ].join('\n'))
    await until('Bob to have the program', async () => (await text(bob)) === (await text(alice)) && (await text(bob)).includes('tick'))
    await until('Alice\'s Run button to be enabled', () => alice.locator('[data-testid=run]').isEnabled())
    const seen = { alice: {}, bob: {} }
    const follow = (name, page) => until(`${name}'s console to show the exit`, async () => {
      const out = await consoleText(page)
      const now = Date.now()
      if (seen[name].first === undefined && out.includes('tick 0')) seen[name].first = now
      if (seen[name].exit === undefined && (await page.locator('[data-testid=run-exit]').count()) > 0) seen[name].exit = now
      return seen[name].exit !== undefined
    }, { timeoutMs: 30_000, detail: () => consoleText(page) })
    await alice.click('[data-testid=run]')
    await Promise.all([follow('alice', alice), follow('bob', bob)])
    for (const [name, page] of [['alice', alice], ['bob', bob]]) {
      const { first, exit } = seen[name]
      assert(first !== undefined, `${name} saw no output`)
      assert(exit - first >= 1000, `${name} saw the first line ${exit - first} ms before the exit: the output did not stream`)
      const out = await consoleText(page)
      for (const i of [0, 1, 2, 3, 4]) assert(out.includes(`tick ${i}`), `${name}'s console lacks tick ${i}: ${out}`)
      const exitLine = await page.locator('[data-testid=run-exit]').last().innerText()
      assert(/exit 0/.test(exitLine), `${name}'s exit line: ${exitLine}`)
      log(`${name}: first line ${exit - first} ms before the exit; ${exitLine}`)
    }
    await alice.locator('details.history-box summary').click()
    await alice.locator('[data-testid=run-history] li[data-status=completed]').first().waitFor({ timeout: 10_000 })
    await shot(alice, 'session')
    await shot(bob, 'session-bob')

    // 4. A viewer cannot type (and cannot run), but follows along.
    await alice.click('[data-testid=share]')
    const carol = await open('carol')
    await signUp(carol, base, names.carol)
    await alice.fill('dialog input[name=who]', names.carol)
    await alice.selectOption('dialog select[name=role]', 'viewer')
    await alice.click('dialog button[type=submit]')
    await alice.locator(`dialog li[data-user="${names.carol}"]`).waitFor()
    await alice.getByRole('button', { name: 'Close' }).click()
    await carol.goto(sessionUrl)
    await until('Carol in the session, live', async () => (await status(carol)) === 'connected')
    await carol.locator('[data-testid=read-only]', { hasText: 'viewer' }).waitFor()
    assert(await carol.locator('[data-testid=run]').isDisabled(), 'the Run button is enabled for a viewer')
    const before = await text(alice)
    await carol.locator('[data-testid=editor]').click()
    await carol.keyboard.type('VIEWER_TYPED')
    await carol.keyboard.insertText('VIEWER_PASTED')
    // A sentinel after her attempt: once Carol has it, anything she had sent would have arrived.
    await focusEnd(alice)
    await alice.keyboard.type('# sentinel\n')
    await until('Carol to see the sentinel', async () => (await text(carol))?.includes('# sentinel'))
    for (const [name, page] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
      const t = await text(page)
      assert(!t.includes('VIEWER_'), `${name}'s document has the viewer's typing: ${t}`)
    }
    assert((await text(alice)).startsWith(before), 'the document changed under the viewer')
    await shot(carol, 'viewer')

    // 5. A dropped connection with an expired access token: 4401, refresh, reconnect.
    const expired = await accessToken(bob)
    await until('Bob\'s access token to expire', async () => refused(expired), { timeoutMs: (ACCESS_TTL_SECS + LEEWAY_SECS + 5) * 1000 })
    await bob.evaluate(() => window.codecrafter.drop())
    await focusEnd(bob)
    await bob.keyboard.type('# bob typed offline\n')
    await until('Bob\'s page to refresh its token, reconnect and sync', async () =>
      (await status(bob)) === 'connected' && (await saveState(bob)) === 'saved' && (await text(alice)).includes('# bob typed offline'),
    { timeoutMs: 20_000, detail: async () => JSON.stringify([await status(bob), await saveState(bob)]) })
    assert((await accessToken(bob)) !== expired, 'Bob\'s page reconnected without a new access token')

    // 6. The server is killed after "saved", edits are made while it is down, it comes back.
    await focusEnd(alice)
    await alice.keyboard.type('# before the restart\n')
    await until('Alice\'s edit to be saved', async () => (await saveState(alice)) === 'saved' && (await text(bob)).includes('# before the restart'))
    await killServer('SIGKILL')
    log('server killed (SIGKILL)')
    await until('both pages to show they are offline', async () =>
      (await status(alice)) !== 'connected' && (await status(bob)) !== 'connected')
    await focusEnd(alice)
    await alice.keyboard.type('# alice typed while the server was down\n')
    await focusEnd(bob)
    await bob.keyboard.type('# bob typed while the server was down\n')
    await until('Alice\'s page to say her edit is not saved yet', async () => (await saveState(alice)) === 'unsaved')
    await alice.fill('[data-testid=chat-input]', 'written while the server was down')
    await alice.press('[data-testid=chat-input]', 'Enter')
    const waiting = alice.locator('[data-testid=chat-messages] li', { hasText: 'written while the server was down' })
    await until('Alice\'s message to wait for the connection', async () => (await waiting.getAttribute('data-state')) === 'waiting')
    await shot(alice, 'offline')
    // Restarted once every page's access token is refused, so each reconnect gets 4401 and
    // refreshes: the embedded server journals its refresh tokens, so the sign-ins outlive it.
    const tokens = await Promise.all([alice, bob, carol].map(accessToken))
    await until('the pages\' access tokens to expire', async () => tokens.every(refused), { timeoutMs: (ACCESS_TTL_SECS + LEEWAY_SECS + 5) * 1000 })
    await carol.context().close()
    delete pages.carol
    await startServer(addr)
    log('server restarted')
    const final = await until('both pages to reconnect, converge and be saved', async () => {
      const [a, b] = [await text(alice), await text(bob)]
      const ok = a === b && (await status(alice)) === 'connected' && (await status(bob)) === 'connected' &&
        (await saveState(alice)) === 'saved' && (await saveState(bob)) === 'saved'
      return ok && a
    }, { timeoutMs: 30_000, detail: async () => JSON.stringify({ alice: [await status(alice), await saveState(alice), await text(alice)], bob: [await status(bob), await saveState(bob), await text(bob)] }) })
    await alice.locator('[data-testid=chat-messages] li[data-state=delivered]', { hasText: 'written while the server was down' }).waitFor({ timeout: 10_000 })
    await bob.locator('[data-testid=chat-messages] li', { hasText: 'written while the server was down' }).waitFor({ timeout: 10_000 })
    assert(await alice.locator('[data-testid=chat-messages] li', { hasText: 'written while the server was down' }).count() === 1, 'the waiting message shows twice')
    for (const [name, page] of [['alice', alice], ['bob', bob]]) {
      assert((await accessToken(page)) !== tokens[name === 'alice' ? 0 : 1], `${name}'s page reconnected without a new access token`)
      assert((await page.locator('[data-testid=reauth]').count()) === 0, `${name}'s page asked to sign in again after the restart`)
    }
    // (The program replaced the first lines: select all, then paste.)
    for (const line of ['print(f"tick {i}", flush=True)', '# sentinel', '# bob typed offline', '# before the restart',
      '# alice typed while the server was down', '# bob typed while the server was down']) {
      assert(final.includes(line), `lost after the restart: ${line}\n${final}`)
    }
    // A fresh browser: Carol signs in and opens the session from its link.
    const fresh = await open('carol-again')
    await fresh.goto(sessionUrl)
    await fresh.fill('input[name=login]', names.carol)
    await fresh.fill('input[name=password]', 'correct horse battery')
    await fresh.getByRole('button', { name: 'Sign in' }).click()
    await until('a fresh page to load everything from the restarted server', async () =>
      (await status(fresh)) === 'connected' && (await text(fresh)) === final, { detail: () => text(fresh) })

    // Signed out in another tab while the session is open here: this tab asks to sign in again
    // over the session (pre-filled), keeps its document, and goes on.
    const aliceElsewhere = await alice.context().newPage()
    watch(aliceElsewhere, 'alice-elsewhere', problems)
    await aliceElsewhere.goto(base)
    await aliceElsewhere.click('[data-testid=sign-out]')
    await alice.locator('[data-testid=reauth]').waitFor({ timeout: 10_000 })
    await shot(alice, 'sign-in-again')
    assert((await alice.inputValue('[data-testid=reauth] input[name=login]')) === names.alice, 'the sign-in form is not pre-filled')
    await aliceElsewhere.close()
    await alice.fill('[data-testid=reauth] input[name=password]', 'correct horse battery')
    await alice.locator('[data-testid=reauth]').getByRole('button', { name: 'Sign in' }).click()
    await until('Alice\'s page to be signed in and live again', async () =>
      (await alice.locator('[data-testid=reauth]').count()) === 0 && (await status(alice)) === 'connected')
    await focusEnd(alice)
    await alice.keyboard.type('# signed in again\n')
    await until('Bob to have the line Alice typed after signing in again', async () => (await text(bob)).includes('# signed in again'))

    // 7. Locked: only the owner writes. Bob (an editor) types; the server refuses it, his page
    //    says the session is locked and drops what he typed.
    await alice.click('[data-testid=lock]')
    await alice.locator('[data-testid=lock]', { hasText: 'Unlock' }).waitFor()
    await focusEnd(bob)
    await bob.keyboard.type('LOCKED_OUT')
    await bob.locator('[data-testid=read-only]', { hasText: 'locked' }).waitFor({ timeout: 10_000 })
    await focusEnd(alice)
    await alice.keyboard.type('# the owner still writes\n')
    await until('Bob to see the owner\'s line, without his refused typing', async () => {
      const t = await text(bob)
      return t === (await text(alice)) && t.includes('# the owner still writes') && !t.includes('LOCKED_OUT')
    }, { detail: async () => JSON.stringify(await text(bob)) })
    await shot(bob, 'locked')

    // Share: change Carol's role, then remove her; her open page is cut off and says so.
    await alice.click('[data-testid=share]')
    const carolRow = alice.locator(`dialog li[data-user="${names.carol}"]`)
    await carolRow.locator('select').selectOption('editor')
    await until('the server to answer the role change', async () =>
      (await carolRow.locator('select').inputValue()) === 'editor' && (await alice.locator('dialog .error').innerText()) === '')
    alice.once('dialog', (dialog) => dialog.accept())
    await carolRow.getByRole('button', { name: 'Remove' }).click()
    await carolRow.waitFor({ state: 'detached' })
    await alice.getByRole('button', { name: 'Close' }).click()
    await fresh.locator('[data-testid=read-only]', { hasText: 'no longer have access' }).waitFor({ timeout: 10_000 })

    // 8. Sign out and in again; the list of sessions; the owner deletes the session.
    await alice.click('[data-testid=sign-out]')
    await alice.getByRole('heading', { name: 'Sign in' }).waitFor()
    await alice.fill('input[name=login]', names.alice)
    await alice.fill('input[name=password]', 'correct horse battery')
    await alice.getByRole('button', { name: 'Sign in' }).click()
    const listed = alice.locator('[data-testid=sessions] li', { hasText: 'Pair programming' })
    await listed.waitFor()
    await shot(alice, 'sessions')
    alice.once('dialog', (dialog) => dialog.accept())
    await listed.getByRole('button', { name: 'Delete' }).click()
    await listed.waitFor({ state: 'detached' })
    await bob.locator('[data-testid=read-only]', { hasText: 'deleted' }).waitFor({ timeout: 10_000 })

    // A session on a phone-sized screen.
    await fresh.goto(base)
    await fresh.fill('input[name=title]', 'On the phone')
    await fresh.getByRole('button', { name: 'Create', exact: true }).click()
    await until('Carol in her new session, live', async () => (await status(fresh)) === 'connected')
    await fresh.setViewportSize({ width: 390, height: 844 })
    await fresh.locator('[data-testid=editor]').click()
    await fresh.keyboard.type('print(input().upper())')
    await fresh.locator('details.stdin summary').click()
    await fresh.fill('[data-testid=run-stdin]', 'small screens work')
    await fresh.locator('[data-testid=run]').click()
    await fresh.locator('[data-testid=run-exit]').waitFor({ timeout: 20_000 })
    assert((await consoleText(fresh)).includes('SMALL SCREENS WORK'), `Carol's console: ${await consoleText(fresh)}`)
    await fresh.locator('[data-testid=console]').scrollIntoViewIfNeeded()
    const overflow = await fresh.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    const wide = await fresh.evaluate(() => [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 5).map((el) => `${el.tagName.toLowerCase()}.${el.className} (${Math.round(el.getBoundingClientRect().right)} px)`))
    assert(overflow <= 0, `the page is ${overflow} px wider than a 390 px screen: ${wide.join(', ')}`)
    await shot(fresh, 'narrow')

    // 9. A server without Docker (the laptop default when no daemon runs): the run panel says so
    //    up front, and a run is refused with the server's reason, not silence.
    let noDocker = null
    const noDockerDir = mkdtempSync(join(tmpdir(), 'codecrafter-e2e-nodocker-'))
    try {
      const noDockerAddr = await spawnServer('127.0.0.1:0', noDockerDir, { DOCKER_HOST: 'none' }, (child) => { noDocker = child })
      const dan = await open('dan')
      await signUp(dan, `http://${noDockerAddr}/`, `dan_${suffix}`)
      await dan.fill('input[name=title]', 'No Docker here')
      await dan.getByRole('button', { name: 'Create', exact: true }).click()
      await until('Dan in his session, live', async () => (await status(dan)) === 'connected')
      await dan.locator('[data-testid=runs-unavailable]').waitFor({ timeout: 10_000 })
      await dan.locator('[data-testid=run]').click()
      await dan.locator('.run-block[data-state=refused]', { hasText: 'refused' }).waitFor({ timeout: 10_000 })
      log(`without Docker: ${await dan.locator('.run-block[data-state=refused]').innerText()}`)
      await shot(dan, 'no-docker')
    } finally {
      noDocker?.kill('SIGTERM')
      rmSync(noDockerDir, { recursive: true, force: true })
    }

    assert(problems.length === 0, `console errors or CSP violations:\n${problems.join('\n')}`)
    log('all browser checks passed')
  } catch (error) {
    for (const [name, page] of Object.entries(pages)) {
      await page.screenshot({ path: join(artifacts, `failure-${name}.png`) }).catch(() => {})
    }
    if (problems.length) console.error(`console errors seen:\n${problems.join('\n')}`)
    throw error
  } finally {
    await browser.close()
  }
}

try {
  await main()
} catch (error) {
  console.error(`[e2e] FAILED: ${error.stack ?? error}`)
  process.exitCode = 1
} finally {
  await killServer('SIGTERM')
  rmSync(dataDir, { recursive: true, force: true })
}
