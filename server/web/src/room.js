// One session's live connection: the Yjs document synced by a stock y-websocket provider, plus
// CodeCrafter's app messages (type 100: chat, run, saved, errors) on the same socket.
//
// - Token expiry: the server closes with 4401, which y-websocket treats as final; we refresh the
//   access token and reconnect, and the edits made meanwhile are sent after the resync.
// - "Saved": the server answers `saved {seq}` once the first `seq` content messages (sync step 2
//   and updates) this connection sent are durable. A socket subclass counts what is sent, so the
//   indicator shows saved only when everything sent is durable and nothing waits unsent.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as authProtocol from 'y-protocols/auth'
import { nonce } from './dom.js'

const MESSAGE_AUTH = 2
const MESSAGE_APP = 100

/** Whether a y-protocols frame carries document content: sync (0) step 2 (1) or update (2). */
function carriesContent (data) {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data
  return bytes instanceof Uint8Array && bytes[0] === 0 && (bytes[1] === 1 || bytes[1] === 2)
}

/** The browser's WebSocket, counting the content messages sent on it. */
class CountingSocket extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols)
    this.contentSent = 0
  }

  send (data) {
    if (carriesContent(data)) this.contentSent++
    super.send(data)
  }
}

/**
 * Events (`room.addEventListener(name, e => e.detail)`):
 * - `app`: every app message from the server (`detail` is its JSON)
 * - `state`: connection or durability changed (read `room.status`, `room.saveState`)
 * - `denied`: the server refused an edit (`detail` is its reason)
 * - `gone`: the server closed for good (4403 no access, 4404 no session; `detail` {code, reason})
 */
export class Room extends EventTarget {
  constructor ({ api, sessionId }) {
    super()
    this.api = api
    this.openedBy = api.user
    this.sessionId = sessionId
    this.doc = new Y.Doc()
    this.text = this.doc.getText('code')
    this.savedSeq = 0
    this.dirtyOffline = false
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
    this.provider = new WebsocketProvider(`${scheme}://${location.host}/ws`, sessionId, this.doc, {
      params: { token: api.auth?.accessToken ?? '', app: '1' },
      WebSocketPolyfill: CountingSocket,
      // Every tab syncs through the server, never tab to tab: what a tab shows is what the
      // server holds, and a viewer's tab cannot feed another tab's edits.
      disableBc: true
    })
    this.provider.messageHandlers[MESSAGE_APP] = (_encoder, decoder) => {
      this.onApp(decoding.readVarString(decoder))
    }
    this.provider.messageHandlers[MESSAGE_AUTH] = (_encoder, decoder) => {
      authProtocol.readAuthMessage(decoder, this.doc, (_doc, reason) => this.emit('denied', reason))
    }
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') {
        this.refusals = 0
        this.socket = this.provider.ws
        this.savedSeq = 0
      } else if (this.socket) {
        // Edits sent on the socket that closed but not yet confirmed saved are unsaved until
        // the resync after the next connect carries them again.
        if (this.savedSeq < this.socket.contentSent) this.dirtyOffline = true
        this.socket = null
      }
      this.emit('state')
    })
    this.provider.on('sync', () => this.emit('state'))
    this.provider.on('closed', (event) => this.onClosed(event))
    this.doc.on('update', (_update, origin) => {
      if (origin !== this.provider && !this.provider.wsconnected) this.dirtyOffline = true
      this.emit('state')
    })
  }

  /** The signed-in user, or the one who opened the room while the sign-in is being renewed. */
  get user () {
    return this.api.user ?? this.openedBy
  }

  /** connecting | connected | disconnected | gone */
  get status () {
    if (this.goneWith) return 'gone'
    if (this.provider.wsconnected) return this.provider.synced ? 'connected' : 'connecting'
    // Still trying, but a connection was lost or refused: say so rather than "connecting".
    return this.provider.wsUnsuccessfulReconnects > 0 ? 'disconnected' : 'connecting'
  }

  /** saved | saving | unsaved (edits kept locally, not yet sent) */
  get saveState () {
    const ws = this.socket
    if (!this.provider.wsconnected || !ws) return this.dirtyOffline ? 'unsaved' : 'saved'
    if (this.savedSeq < ws.contentSent) return 'saving'
    return this.dirtyOffline ? 'saving' : 'saved'
  }

  emit (name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }))
  }

  onApp (json) {
    let message
    try {
      message = JSON.parse(json)
    } catch {
      return
    }
    if (message.type === 'saved') {
      this.savedSeq = Math.max(this.savedSeq, message.seq)
      // Offline edits travel in the step 2 that follows a reconnect: saved covers them now.
      const sent = this.socket?.contentSent ?? 0
      if (sent > 0 && this.savedSeq >= sent) this.dirtyOffline = false
      this.emit('state')
      return
    }
    this.emit('app', message)
  }

  async onClosed ({ code, reason }) {
    if (code === 4401) {
      // The access token expired (or was refused): refresh it and reconnect. A new token refused
      // again means something else is wrong: ask to sign in rather than spend refresh tokens.
      this.refusals = (this.refusals ?? 0) + 1
      if (this.refusals > 2) {
        this.api.onExpired('The server refuses this sign-in: sign in again.')
        return
      }
      try {
        const stale = this.provider.params.token
        this.provider.params.token = await this.api.refresh(stale)
        this.provider.connect()
      } catch {
        // The sign-in is gone (the Api has asked to sign in again): `reconnect()` follows it.
      }
      return
    }
    this.goneWith = { code, reason }
    this.emit('gone', this.goneWith)
  }

  /** Sends an app message; returns its nonce (answers carry it), or null when offline. */
  send (message) {
    const ws = this.provider.ws
    if (!this.provider.wsconnected || !ws || ws.readyState !== WebSocket.OPEN) return null
    const withNonce = { nonce: nonce(), ...message }
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MESSAGE_APP)
    encoding.writeVarString(encoder, JSON.stringify(withNonce))
    ws.send(encoding.toUint8Array(encoder))
    return withNonce.nonce
  }

  /** Reconnects with the current access token (after signing in again). */
  reconnect () {
    this.refusals = 0
    this.provider.params.token = this.api.auth?.accessToken ?? ''
    this.provider.disconnect()
    this.provider.connect()
  }

  destroy () {
    this.provider.destroy()
    this.doc.destroy()
  }
}
