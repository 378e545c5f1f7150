// widget.js — the script-tag embed. On the host page:
//   <script src="https://analytics.example.com/embed/widget.js" data-widget="customer-card"
//           data-token="<embed token>" data-customer="c-42" async></script>
// inserts the widget's <iframe> right after the script (or into data-target), and keeps its height
// in step with the widget's content through postMessage from the widget's origin only.

(function () {
  const WIDGETS = {
    'customer-card': 'Customer overview',
    'metric-chart': 'Metric over time',
    'campaign-chart': 'Campaign performance',
    'live-badge': 'Live wait time',
    'cohort-heatmap': 'Cohort retention',
  };
  const OWN = ['widget', 'token', 'target', 'title', 'height'];
  const script = document.currentScript;
  if (!script || !script.src) return;
  const origin = new URL(script.src).origin;
  const data = script.dataset;
  if (!WIDGETS[data.widget] || !data.token) {
    console.warn('lambdalytics: data-widget must be one of', Object.keys(WIDGETS).join(', '), 'and data-token is required');
    return;
  }
  const id = `ll-${Math.random().toString(36).slice(2, 10)}`;
  const params = new URLSearchParams({ token: data.token, frame: id });
  for (const [key, value] of Object.entries(data)) {
    if (!OWN.includes(key)) params.set(key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), value);
  }
  const frame = document.createElement('iframe');
  frame.src = `${origin}/embed/${data.widget}?${params}`;
  frame.title = data.title || WIDGETS[data.widget];
  frame.loading = 'lazy';
  frame.referrerPolicy = 'no-referrer';
  frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-popups');
  frame.dataset.lambdalytics = data.widget;
  frame.style.width = '100%';
  frame.style.border = '0';
  frame.style.display = 'block';
  frame.style.height = `${Number(data.height) || 160}px`;
  const target = data.target ? document.getElementById(data.target) : null;
  if (target) target.append(frame);
  else if (script.parentNode === document.head) document.body.append(frame);
  else script.after(frame);
  window.addEventListener('message', (event) => {
    const msg = event.data;
    if (event.origin !== origin || event.source !== frame.contentWindow || !msg || msg.type !== 'lambdalytics:resize' || msg.id !== id) return;
    const height = Number(msg.height);
    if (Number.isFinite(height)) frame.style.height = `${Math.min(4000, Math.max(40, Math.ceil(height)))}px`;
  });
})();
