// The JSON API with the signed-in user's tokens: every request carries the access token, a 401
// refreshes it once and retries, and a refresh that fails signs the user out. Refresh tokens work
// once (reusing one revokes the sign-in), so refreshes are single-flight within a tab and, where
// the browser has Web Locks, across tabs: a tab that waited for another's refresh takes the
// rotated tokens from storage instead of spending the old refresh token a second time.

const STORAGE_KEY = 'codecrafter.auth'

export class ApiError extends Error {
  constructor (status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

export class Api {
  /**
   * `onExpired(message)` runs when a refresh is refused: the sign-in expired or was revoked (a
   * restarted embedded server forgets its refresh tokens too). The caller asks to sign in again
   * without throwing away what the page holds.
   */
  constructor ({ onExpired }) {
    this.onExpired = onExpired
    this.refreshing = null
  }

  /** `{ user, accessToken, refreshToken }` or null. */
  get auth () {
    try {
      return JSON.parse(localStorage.getItem(STORAGE_KEY))
    } catch {
      return null
    }
  }

  set auth (value) {
    if (value) localStorage.setItem(STORAGE_KEY, JSON.stringify(value))
    else localStorage.removeItem(STORAGE_KEY)
  }

  /** The user signed in (or whose sign-in just expired: see `signedIn`). */
  get user () {
    return this.auth?.user ?? null
  }

  get signedIn () {
    return Boolean(this.auth?.refreshToken)
  }

  async register (fields) {
    this.keep(await this.send('POST', '/api/auth/register', fields, null))
  }

  async login (login, password) {
    this.keep(await this.send('POST', '/api/auth/login', { login, password }, null))
  }

  keep ({ user, accessToken, refreshToken }) {
    this.auth = { user, accessToken, refreshToken }
  }

  async logout () {
    const auth = this.auth
    this.auth = null
    if (auth?.refreshToken) {
      await this.send('POST', '/api/auth/logout', { refreshToken: auth.refreshToken }, null).catch(() => {})
    }
  }

  /** `method path` as the signed-in user; refreshes the access token once on a 401. */
  async request (method, path, body) {
    const token = this.auth?.accessToken
    try {
      return await this.send(method, path, body, token)
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401 || !token) throw error
      await this.refresh(token)
      return this.send(method, path, body, this.auth?.accessToken)
    }
  }

  /**
   * A new access token, unless the one in storage is already newer than `stale` (another request
   * or tab refreshed meanwhile). Throws, after signing out, when the sign-in is gone.
   */
  refresh (stale) {
    if (!this.refreshing) {
      const run = () => this.refreshNow(stale)
      const locked = navigator.locks ? navigator.locks.request(STORAGE_KEY, run) : run()
      this.refreshing = locked.finally(() => { this.refreshing = null })
    }
    return this.refreshing
  }

  async refreshNow (stale) {
    const auth = this.auth
    if (!auth) {
      this.onExpired('You were signed out: sign in again.')
      throw new ApiError(401, 'signed_out', 'Signed out')
    }
    if (auth.accessToken !== stale) return auth.accessToken
    try {
      const pair = await this.send('POST', '/api/auth/refresh', { refreshToken: auth.refreshToken }, null)
      this.auth = { ...auth, accessToken: pair.accessToken, refreshToken: pair.refreshToken }
      return pair.accessToken
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        this.auth = { user: auth.user, accessToken: null, refreshToken: null }
        this.onExpired('Your sign-in expired: sign in again.')
      }
      throw error
    }
  }

  async send (method, path, body, token) {
    const headers = {}
    if (body !== undefined) headers['content-type'] = 'application/json'
    if (token) headers.authorization = `Bearer ${token}`
    let res
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached')
    }
    if (res.status === 204) return null
    const text = await res.text()
    let json = null
    try {
      json = text ? JSON.parse(text) : null
    } catch {}
    if (!res.ok) {
      const error = json?.error
      throw new ApiError(res.status, error?.code ?? 'http_error', error?.message ?? `HTTP ${res.status}`)
    }
    return json
  }
}
