// The metric dictionary, as the server sends it with the page (the same list GET /v1/metrics publishes):
// labels, units, descriptions and display hints all come from the catalog, so no metric name is
// written here. Only RFM segment labels live in the page: segments are an analysis, not metrics.

export const SEGMENTS = {
  champions: 'Champion',
  loyal: 'Loyal',
  new: 'New',
  promising: 'Promising',
  at_risk: 'At risk',
  hibernating: 'Hibernating',
  need_attention: 'Needs attention',
};

/** "need_attention" → "Need attention": for a name the dictionary does not know. */
export function humanize(name) {
  const text = String(name).replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export class Catalog {
  constructor(entries) {
    this.entries = entries || [];
    this.byName = new Map(this.entries.map((m) => [m.name, m]));
  }

  label(name) {
    return this.byName.get(name)?.label || humanize(name);
  }

  /** A label that fits a small tile; the full label goes in its title. */
  shortLabel(name) {
    return this.byName.get(name)?.short_label || this.label(name);
  }

  caption(name) {
    return this.byName.get(name)?.caption || '';
  }

  unit(name) {
    return this.byName.get(name)?.unit || 'count';
  }

  description(name) {
    return this.byName.get(name)?.description || '';
  }

  additive(name) {
    return Boolean(this.byName.get(name)?.additive);
  }

  /** Public metrics of a grain, in catalog order. */
  at(grain) {
    return this.entries.filter((m) => m.grain === grain);
  }

  /** Metrics of a grain that have a time series (customer: GET /v1/customers/{id}/timeseries). */
  series(grain) {
    return this.at(grain).filter((m) => m.series);
  }

  /** The grain's default metric: the chart shown unless the link asks for another, the main tile. */
  primary(grain) {
    return this.at(grain).find((m) => m.primary)?.name ?? null;
  }

  /** Names of a grain's headline metrics, best first. */
  headlines(grain) {
    return this.at(grain)
      .filter((m) => m.headline)
      .sort((a, b) => a.headline - b.headline)
      .map((m) => m.name);
  }
}
