// Where a website's login code leads: the website shows a mini-program code for the page
// pages/web-login/confirm whose `scene` is the login ticket's id. WeChat opens that page with
// the scene in its query, URL-encoded; the home page's scan button finds it in what
// wx.scanCode read and opens the page the same way.

const CONFIRM_PAGE = 'pages/web-login/confirm';

/**
 * The ticket id of the confirm page's query, as WeChat gives it (from a scanned code, or from
 * wx.navigateTo, which passes the query on undecoded): the `scene`, URL-decoded. '' when there
 * is none or it is not valid URL encoding.
 */
function ticketFromQuery(query) {
  return decodedScene(query && query.scene);
}

/**
 * The ticket id a wx.scanCode result carries: WeChat gives `path` ("pages/web-login/confirm?
 * scene=…") for a code of this mini-program; a code that only carries text (a QR code of that
 * path or of a URL ending in it) has it in `result`. '' when the code does not lead to the
 * confirm page with a scene.
 */
function ticketFromScan(res) {
  if (!res) return '';
  return sceneOfConfirm(res.path) || sceneOfConfirm(res.result);
}

/** The confirm page's address for wx.navigateTo, with `ticket` encoded as its scene. */
function confirmUrl(ticket) {
  return '/' + CONFIRM_PAGE + '?scene=' + encodeURIComponent(ticket);
}

/** The decoded scene of `address` when it is the confirm page's, with or without host. */
function sceneOfConfirm(address) {
  if (typeof address !== 'string') return '';
  const at = address.indexOf('?');
  if (at < 0) return '';
  const target = address.slice(0, at);
  if (target !== CONFIRM_PAGE && !target.endsWith('/' + CONFIRM_PAGE)) return '';
  const pairs = address.slice(at + 1).split('#')[0].split('&');
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq) === 'scene') return decodedScene(pair.slice(eq + 1));
  }
  return '';
}

function decodedScene(scene) {
  if (typeof scene !== 'string') return '';
  try {
    return decodeURIComponent(scene);
  } catch (error) {
    // A stray "%": not something the website's code carries.
    return '';
  }
}

module.exports = { CONFIRM_PAGE: CONFIRM_PAGE, ticketFromQuery: ticketFromQuery, ticketFromScan: ticketFromScan, confirmUrl: confirmUrl };
