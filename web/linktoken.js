// Room tokens from join links (`parley token`): `…/?room=R#token=…`. A fragment never leaves the
// browser (no request line, no proxy access log); older `?token=…` links still work. The page
// takes the token off its address as soon as it loads (history.replaceState: not in the history,
// not in a copied link) and keeps it in this tab's sessionStorage under its room only, so a
// reload of that room joins again and another room in the same tab never gets it.
// splitLinkToken is pure (unit-tested with `node --test`); the rest is the page's glue.

const KEY_PREFIX = "parley.token.";

/** The sessionStorage key of `room`'s token. */
export function tokenKey(room) {
  return KEY_PREFIX + room;
}

/** The room a JWT's payload names (`room` claim), or null: the link had no `room` parameter. */
export function tokenRoom(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const room = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "="))).room;
    return typeof room === "string" ? room : null;
  } catch {
    return null;
  }
}

/**
 * Split a page address into the link's token (`#token=`, else `?token=`), its room, and the
 * address without any token; the other query parameters and fragment parts stay as they were.
 * @param {string} href
 * @returns {{token: string|null, room: string|null, href: string}}
 */
export function splitLinkToken(href) {
  const url = new URL(href);
  let token = null;
  const hash = new URLSearchParams(url.hash.slice(1));
  if (hash.has("token")) {
    token = hash.get("token");
    hash.delete("token");
    const rest = hash.toString();
    url.hash = rest ? `#${rest}` : "";
  }
  if (url.searchParams.has("token")) {
    token = token || url.searchParams.get("token");
    url.searchParams.delete("token");
  }
  token = token || null;
  const room = url.searchParams.get("room") || (token && tokenRoom(token)) || null;
  // "https://h/?room=a#" keeps an empty fragment when set to "": leave no "#" behind
  return { token, room, href: url.href.endsWith("#") ? url.href.slice(0, -1) : url.href };
}

/**
 * At page load: take the link's token off the address and keep it for its room in `storage`.
 * Returns a function giving the token to join `room` with (null: none).
 */
export function takeLinkToken(win = window) {
  const { token, room, href } = splitLinkToken(win.location.href);
  if (href !== win.location.href) win.history.replaceState(win.history.state, "", href);
  let unkeyed = null; // a token whose room we cannot tell: only for this page's joins
  if (token && room) win.sessionStorage.setItem(tokenKey(room), token);
  else if (token) unkeyed = token;
  return (joinRoom) => win.sessionStorage.getItem(tokenKey(joinRoom)) || unkeyed;
}
