// The few DOM helpers the views share: element construction without innerHTML (text from the
// server is never parsed as markup), and small formatting.

/**
 * `h('button.primary', { onclick, disabled: true }, 'Run')`: an element with classes from the
 * tag, properties or attributes from `props`, and children (strings become text nodes).
 */
export function h (tag, props = {}, ...children) {
  const [name, ...classes] = tag.split('.')
  const el = document.createElement(name || 'div')
  if (classes.length) el.className = classes.join(' ')
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value)
    else if (key === 'dataset') Object.assign(el.dataset, value)
    else if (key in el && key !== 'list' && key !== 'form') el[key] = value
    else el.setAttribute(key, value === true ? '' : value)
  }
  append(el, children)
  return el
}

function append (el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replaces the children of `el`. */
export function fill (el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

/** "3 s ago", "5 min ago", or a date, for a timestamp in ms or an ISO string. */
export function ago (when) {
  const ms = typeof when === 'number' ? when : Date.parse(when)
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86400) return `${Math.round(s / 3600)} h ago`
  return new Date(ms).toLocaleDateString()
}

/** "12:04:31" for a timestamp in ms. */
export function clock (ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
}

/** A stable colour pair for a user id: the caret colour and a light one for selections. */
export function colours (id) {
  let hash = 0
  for (const c of String(id)) hash = (hash * 31 + c.codePointAt(0)) >>> 0
  const hue = hash % 360
  return { color: `hsl(${hue} 70% 42%)`, colorLight: `hsl(${hue} 80% 42% / 0.22)` }
}

/**
 * `colour` if it is a plain CSS colour (hex, rgb(), hsl()), else grey. Awareness states come from
 * other clients: a "colour" with a `;` in it would add declarations to a style attribute.
 */
export function safeColour (colour) {
  const plain = /^(#[0-9a-f]{3,8}|(rgb|hsl)a?\([0-9.,%\s/a-z]{1,60}\))$/i
  return typeof colour === 'string' && plain.test(colour) && !/[;:]/.test(colour) ? colour : '#888'
}

/** A random id for a request's `nonce`. */
export function nonce () {
  const bytes = crypto.getRandomValues(new Uint8Array(9))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}
