// Series names: legendFormat with {{label}} placeholders, else Prometheus' own notation.

export function seriesName(metric, legendFormat, expr) {
  metric = metric || {};
  if (legendFormat && legendFormat !== '__auto') {
    return legendFormat.replace(/\{\{\s*(.+?)\s*\}\}/g, (all, name) =>
      Object.prototype.hasOwnProperty.call(metric, name) ? String(metric[name]) : '');
  }
  const name = metric.__name__ || '';
  const labels = Object.keys(metric)
    .filter((k) => k !== '__name__')
    .sort()
    .map((k) => `${k}="${metric[k]}"`);
  if (!labels.length) return name || expr || '{}';
  return `${name}{${labels.join(', ')}}`;
}
