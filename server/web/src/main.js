// The browser client's entry: routes by the URL's hash (`#/` my sessions, `#/s/<id>` a session),
// with the sign-in screen in front of both.
import './style.css'
import { Api } from './api.js'
import { h, fill } from './dom.js'
import { signInView } from './signin.js'
import { sessionsView } from './sessions.js'
import { SessionView } from './session.js'

const root = document.getElementById('app')
let notice = ''
let current = null
const api = new Api({
  onExpired (message) {
    // An open session keeps its document (and any edits not yet sent) and asks to sign in
    // again over it; elsewhere, back to the sign-in screen.
    if (current?.reauthenticate) current.reauthenticate(message)
    else {
      notice = message
      route()
    }
  }
})

function header () {
  const user = api.user
  return h('header.top',
    {},
    h('a.brand', { href: '#/' }, 'CodeCrafter'),
    h('span.spacer'),
    user && h('span.who', { 'data-testid': 'signed-in-as' }, user.username),
    user && h('button.link', {
      'data-testid': 'sign-out',
      onclick: async () => {
        if (!mayLeave()) return
        await api.logout()
        // The next sign-in (maybe someone else's) starts from the list, not this session.
        history.replaceState(null, '', '#/')
        shownHash = location.hash
        route()
      }
    }, 'Sign out'))
}

/** Edits this tab has not got the server to save are lost with the page: ask first. */
function unsaved () {
  const state = current?.room?.saveState
  return state !== undefined && state !== 'saved'
}

function mayLeave () {
  return !unsaved() || confirm('Some of your edits are not saved yet (the server is unreachable). Leave and lose them?')
}

function route () {
  current?.destroy?.()
  current = null
  const main = h('main')
  fill(root, header(), main)
  if (!api.signedIn) {
    const message = notice
    notice = ''
    fill(main, signInView(api, { message, onSignedIn: route }))
    return
  }
  const match = location.hash.match(/^#\/s\/([0-9a-f]{24})$/)
  if (match) {
    current = new SessionView({ api, sessionId: match[1], parent: main })
  } else {
    current = sessionsView({ api, parent: main })
  }
}

// For the browser tests and the console: what the open session's document and connection are.
window.codecrafter = {
  get text () { return current?.room?.text.toString() ?? null },
  get status () { return current?.room?.status ?? null },
  get saveState () { return current?.room?.saveState ?? null },
  /** Closes the socket as a network blip would (the provider reconnects by itself). */
  drop () { current?.room?.provider.ws?.close() }
}

let shownHash = location.hash
window.addEventListener('hashchange', () => {
  if (location.hash === shownHash) return
  if (!mayLeave()) {
    location.hash = shownHash
    return
  }
  shownHash = location.hash
  route()
})
window.addEventListener('beforeunload', (event) => {
  if (unsaved()) event.preventDefault()
})
// Another tab signing in or out changes the stored sign-in: follow it (an open session asks to
// sign in again rather than drop its document).
window.addEventListener('storage', (event) => {
  if (event.key !== 'codecrafter.auth') return
  if (api.signedIn && !current) route()
  else if (!api.signedIn && current?.reauthenticate) current.reauthenticate('You signed out in another tab: sign in again.')
  else if (!api.signedIn) route()
})
route()
