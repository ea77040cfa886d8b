// The single-page app: routes by path (/, /d/<uid>, /dashboards, /explore, /traces,
// /trace/<id>, /status); same-origin links navigate without reloading.
import { navigate } from './lib/dom.js';
import { mountDashboard, mountDashboardList } from './dashboard.js';
import { mountExplore } from './explore.js';
import { mountTraces, mountTrace } from './traces.js';
import { mountStatus } from './status.js';

export const HOME_UID = 'scotty-metrics';

const main = document.getElementById('main');
const toolbar = document.getElementById('toolbar');
let current = null;

function route() {
  if (current) current.destroy();
  current = null;
  const path = location.pathname;
  let nav = 'dashboards';
  if (path === '/') current = mountDashboard(main, toolbar, HOME_UID);
  else if (path.startsWith('/d/')) current = mountDashboard(main, toolbar, decodeURIComponent(path.slice(3)));
  else if (path === '/dashboards') current = mountDashboardList(main, toolbar);
  else if (path === '/explore') { nav = 'explore'; current = mountExplore(main, toolbar); }
  else if (path === '/traces') { nav = 'traces'; current = mountTraces(main, toolbar); }
  else if (path.startsWith('/trace/')) { nav = 'traces'; current = mountTrace(main, toolbar, decodeURIComponent(path.slice(7))); }
  else if (path === '/status') { nav = 'status'; current = mountStatus(main, toolbar); }
  else current = mountDashboard(main, toolbar, HOME_UID);
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === nav));
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const href = a.getAttribute('href');
  if (!href || !href.startsWith('/') || href.startsWith('//') || href.startsWith('/api/') || href.startsWith('/metrics') || a.hasAttribute('download')) return;
  e.preventDefault();
  navigate(href);
});
window.addEventListener('popstate', route);
window.addEventListener('tr:navigate', route);
route();
