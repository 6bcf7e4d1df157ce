// A session's screen: the bar (title, role, connection, saved, who is here, lock, share), the
// editor, and the run and chat panels. Read-only (a viewer, or a locked session for all but its
// owner) is shown in a banner and enforced in the editor; the server enforces it regardless.
import { h, fill, colours, safeColour } from './dom.js'
import { Room } from './room.js'
import { Editor } from './editor.js'
import { ChatPanel } from './chat.js'
import { RunPanel } from './run.js'
import { shareDialog } from './share.js'
import { signInView } from './signin.js'

/** How often the session (role, lock) is read again while open. */
const SESSION_POLL_MS = 15_000

export class SessionView {
  constructor ({ api, sessionId, parent }) {
    this.api = api
    this.sessionId = sessionId
    this.parent = parent
    this.session = null
    // Who opened it: asked to sign in again (signed out elsewhere), we suggest the same account.
    this.username = api.user?.username
    fill(parent, h('p.muted', {}, 'Opening the session…'))
    this.start()
  }

  start () {
    this.open().catch((e) => {
      // A refused sign-in has asked to sign in again (reauthenticate), which opens it after.
      if (e.status === 401) return
      fill(this.parent, h('section.card.narrow', {},
        h('h1', {}, 'Cannot open this session'), h('p.error', { role: 'alert' }, e.message), h('a', { href: '#/' }, 'Back to my sessions')))
    })
  }

  async open () {
    // Joining is also how a member opens it: an invitation becomes active, a public session
    // gives a seat as a viewer; a private one answers 403 with the reason.
    this.session = await this.api.request('POST', `/api/sessions/${this.sessionId}/join`)
    if (this.destroyed) return
    this.connect()
    this.poll = setInterval(() => this.reload(), SESSION_POLL_MS)
    this.onVisible = () => document.visibilityState === 'visible' && this.reload()
    document.addEventListener('visibilitychange', this.onVisible)
  }

  /** A room connection and the screen around it. */
  connect () {
    this.room = new Room({ api: this.api, sessionId: this.sessionId })
    const user = this.api.user
    this.room.provider.awareness.setLocalStateField('user', { id: user.id, name: user.username, ...colours(user.id) })
    this.render()
    this.room.addEventListener('state', () => this.showState())
    this.room.addEventListener('denied', () => this.onDenied())
    this.room.addEventListener('gone', (e) => this.showGone(e.detail))
    this.room.provider.awareness.on('change', () => this.showPresence())
  }

  /**
   * The server refused an edit: we lost write access (lowered to viewer, or locked) since the
   * session was last read. The refused edit stays in this tab's copy of the document unless we
   * drop it, so start over from the server's document with the editor read-only.
   */
  async onDenied () {
    // One keystroke after another is refused: one start-over is enough.
    if (this.restarting) return
    this.restarting = true
    try {
      await this.reload()
      if (this.destroyed) return
      if (this.session.canWrite) {
        // Write access came back meanwhile (unlocked, role raised): a new connection's resync
        // carries the refused edit again. At most every few seconds, should the two disagree.
        if (Date.now() - (this.resent ?? 0) > 5000) {
          this.resent = Date.now()
          this.room.reconnect()
        }
        return
      }
      this.teardown()
      this.connect()
      this.els.banner.textContent += ' Your last edit was not accepted.'
    } finally {
      this.restarting = false
    }
  }

  render () {
    const s = this.session
    this.els = {
      title: h('h1.title', {}, s.title),
      language: h('span.badge', { 'data-testid': 'session-language' }, s.language),
      role: h('span.badge', { 'data-testid': 'role' }, s.yourRole),
      status: h('span.status', { 'data-testid': 'connection' }),
      saved: h('span.saved', { 'data-testid': 'saved', 'aria-live': 'polite' }),
      presence: h('ul.presence', { 'data-testid': 'presence', 'aria-label': 'Who is here' }),
      actions: h('span.actions'),
      banner: h('div.banner', { role: 'status', 'data-testid': 'read-only', hidden: true }),
      editor: h('div.editor-pane')
    }
    const run = h('section.panel.run')
    const chat = h('section.panel.chat')
    fill(this.parent, h('section.session', {},
      h('div.bar', {}, this.els.title, this.els.language, this.els.role, this.els.status, this.els.saved,
        h('span.spacer'), this.els.presence, this.els.actions),
      this.els.banner,
      h('div.workspace', {}, this.els.editor, h('div.side', {}, run, chat))))
    this.editor = new Editor({ room: this.room, parent: this.els.editor, language: s.language, readOnly: !s.canWrite })
    this.runPanel = new RunPanel({ api: this.api, room: this.room, session: s, parent: run })
    this.chatPanel = new ChatPanel({ room: this.room, parent: chat })
    this.showSession()
    this.showState()
    this.showPresence()
  }

  /** Reads the session again: a role or lock change shows at once. */
  async reload () {
    try {
      const session = await this.api.request('GET', `/api/sessions/${this.sessionId}`)
      if (this.destroyed) return
      this.session = session
      this.showSession()
    } catch (e) {
      if (e.status === 403 || e.status === 404) this.showGone({ code: e.status === 404 ? 4404 : 4403, reason: e.message })
    }
  }

  showSession () {
    const s = this.session
    this.els.title.textContent = s.title
    this.els.language.textContent = s.language
    this.els.role.textContent = s.yourRole
    this.editor.setLanguage(s.language)
    this.editor.setReadOnly(!s.canWrite || Boolean(this.room.goneWith))
    this.runPanel.setSession(s)
    const banner = this.els.banner
    banner.hidden = s.canWrite && !this.room.goneWith
    if (!s.canWrite) {
      banner.textContent = s.isLocked && s.yourRole !== 'viewer'
        ? 'Read-only: the owner locked this session. You can still chat.'
        : 'Read-only: you are a viewer here. You can follow along and chat.'
    }
    const manage = s.yourRole === 'owner' || s.yourRole === 'admin'
    fill(this.els.actions,
      s.isLocked && h('span.badge.locked', {}, 'locked'),
      manage && h('button', {
        'data-testid': 'lock',
        onclick: () => this.act('POST', `/api/sessions/${this.sessionId}/${s.isLocked ? 'unlock' : 'lock'}`)
      }, s.isLocked ? 'Unlock' : 'Lock'),
      manage && h('button', {
        'data-testid': 'share',
        onclick: () => shareDialog({ api: this.api, session: this.session, onChange: (next) => { this.session = next; this.showSession() } })
      }, 'Share'))
  }

  /**
   * The sign-in expired (or was revoked) with this session open: sign in again over it. The room
   * keeps its document meanwhile, edits included, and reconnects with the new token.
   */
  reauthenticate (message) {
    if (this.reauth || this.destroyed) return
    const dialog = this.reauth = h('dialog.reauth', { 'data-testid': 'reauth' })
    const done = () => {
      dialog.close()
      if (!this.room) return this.start()
      this.room.reconnect()
      this.reload()
    }
    document.body.append(dialog)
    fill(dialog, signInView(this.api, { message, login: this.username, onSignedIn: done }))
    dialog.addEventListener('close', () => { dialog.remove(); this.reauth = null })
    // Escape closes a modal dialog: it must not leave the page signed out behind it.
    dialog.addEventListener('cancel', (e) => e.preventDefault())
    dialog.showModal()
  }

  async act (method, path) {
    try {
      this.session = await this.api.request(method, path)
      this.showSession()
    } catch (e) { alert(e.message) }
  }

  showState () {
    const status = this.room.status
    this.els.status.textContent = { connected: 'live', connecting: 'connecting…', disconnected: 'offline, reconnecting…', gone: 'disconnected' }[status]
    this.els.status.dataset.state = status
    const save = this.room.saveState
    this.els.saved.textContent = { saved: 'saved', saving: 'saving…', unsaved: 'not saved yet (kept here until reconnected)' }[save]
    this.els.saved.dataset.state = save
    this.runPanel?.setConnected(status === 'connected')
  }

  showPresence () {
    const states = [...this.room.provider.awareness.getStates().entries()]
    const me = this.room.doc.clientID
    fill(this.els.presence, states.filter(([, st]) => st.user).map(([id, st]) =>
      h('li', { title: String(st.user.name), dataset: { user: String(st.user.name) } },
        h('span.dot', { style: `background:${safeColour(st.user.color)}` }), id === me ? `${st.user.name} (you)` : String(st.user.name))))
  }

  showGone ({ code, reason }) {
    const why = code === 4404 ? 'This session was deleted.' : code === 4403 ? 'You no longer have access to this session.' : reason || `Disconnected (${code}).`
    this.els.banner.hidden = false
    this.els.banner.textContent = why
    this.editor.setReadOnly(true)
    this.showState()
  }

  teardown () {
    this.editor?.destroy()
    this.room?.destroy()
  }

  destroy () {
    this.destroyed = true
    clearInterval(this.poll)
    this.reauth?.close()
    document.removeEventListener('visibilitychange', this.onVisible)
    this.teardown()
  }
}
