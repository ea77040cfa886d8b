// The top bar's alert badge: the number of firing alerts (from /api/v1/alerts), a link to
// /alerts, hidden when nothing fires. Polled every 15 s and at each navigation; the next poll is
// only scheduled once the last one is answered, so polls never pile up.
import { getJSON } from './lib/api.js';
import { firingCount } from './lib/alerts.js';

const POLL_MS = 15000;
let timer = null;
let busy = false;

export function setAlertBadge(n) {
  const el = document.getElementById('alert-badge');
  if (!el) return;
  el.hidden = !(n > 0);
  el.dataset.count = String(n);
  el.textContent = `${n} firing`;
  el.title = `${n} firing alert${n === 1 ? '' : 's'}`;
}

export async function pollAlertBadge() {
  if (busy) return;
  busy = true;
  clearTimeout(timer);
  try {
    const r = await getJSON('/api/v1/alerts');
    setAlertBadge(firingCount(r.data && r.data.alerts));
  } catch {
    // no rules API (or an error): keep the last count; the Alerts page shows the error
  } finally {
    busy = false;
    timer = setTimeout(pollAlertBadge, POLL_MS);
  }
}
