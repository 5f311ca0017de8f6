(() => {
  const data = JSON.parse(document.getElementById('data').textContent);
  const container = document.getElementById('rows');
  const search = document.getElementById('search');
  const sort = document.getElementById('sort');
  const count = document.getElementById('count');
  const viewer = document.getElementById('viewer');
  const big = document.getElementById('big');
  const caption = document.getElementById('caption');
  const elements = new Array(data.rows.length);
  let view = data.rows.map((_, i) => i);
  let drawn = 0;
  let current = -1;
  let showAlpha = false;
  const FIRST = 40, CHUNK = 200;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // Every name goes in as text, never as HTML.
  function rowElement(i) {
    if (elements[i]) return elements[i];
    const r = data.rows[i];
    const row = el('div', 'row');
    row.setAttribute('role', 'row');
    row.tabIndex = 0;
    row.dataset.row = i;
    const label = el('div', 'label', r.n);
    label.setAttribute('role', 'rowheader');
    row.appendChild(label);
    r.c.forEach((c, j) => {
      const cell = el('div', 'cell');
      cell.setAttribute('role', 'cell');
      if (!c) { cell.textContent = '–'; row.appendChild(cell); return; }
      const figure = el('figure');
      const link = el('a', 'open');
      link.href = c.s;
      link.dataset.column = j;
      const img = el('img');
      img.loading = 'lazy'; img.decoding = 'async'; img.src = c.s;
      img.alt = r.n + ', ' + data.columns[j];
      img.width = 160; img.height = 160;
      link.appendChild(img);
      figure.appendChild(link);
      if (c.e) {
        // The dataset images that drive the same class or unit, beside it.
        const sheet = el('a', 'exemplars');
        sheet.href = c.e;
        const shown = el('img');
        shown.loading = 'lazy'; shown.decoding = 'async'; shown.src = c.e;
        shown.alt = r.n + ': dataset exemplars';
        sheet.appendChild(shown);
        figure.appendChild(sheet);
      }
      const text = [];
      if (c.l !== undefined) text.push('S ' + c.l.toFixed(2));
      if (c.p !== undefined) text.push('p ' + c.p.toFixed(3) + (c.t === false ? ' (not top-1)' : ''));
      if (c.x) text.push('stalled');
      const fc = el('figcaption', null, text.join(' · '));
      if (c.m !== undefined) {
        fc.appendChild(el('br'));
        const mark = el('span', c.r ? 'ok' : 'bad', '●');
        mark.title = (c.r ? 'recognised by ' : 'not recognised by ') + c.m;
        fc.appendChild(mark);
        fc.appendChild(document.createTextNode(' ' + c.m + ' p ' + c.q.toFixed(3)));
      }
      for (const [key, word] of [['a', 'alpha'], ['g', 'gif']]) {
        if (c[key]) { fc.appendChild(el('br')); const a = el('a', null, word); a.href = c[key]; fc.appendChild(a); }
      }
      figure.appendChild(fc);
      cell.appendChild(figure);
      row.appendChild(cell);
    });
    return elements[i] = row;
  }
  // Append the rows of the view up to `upTo` that are not drawn yet.
  function draw(upTo) {
    const end = Math.min(upTo, view.length);
    const fragment = document.createDocumentFragment();
    for (; drawn < end; drawn++) fragment.appendChild(rowElement(view[drawn]));
    container.appendChild(fragment);
    count.textContent = view.length + ' of ' + data.rows.length + ' rows';
  }
  function drawRest() {
    if (drawn >= view.length) { window.classvizReady = true; return; }
    draw(drawn + CHUNK);
    (window.requestIdleCallback || setTimeout)(drawRest);
  }
  function redraw() {
    container.replaceChildren();
    drawn = 0;
    draw(view.length);
    window.classvizReady = true;
  }
  function matches(r, q) {
    return !q || String(r.i) === q || r.n.toLowerCase().includes(q) || r.k.toLowerCase().includes(q);
  }
  function key(i, by) {
    const r = data.rows[i];
    if (by === 'index') return r.i ?? Infinity;
    if (by === 'name') return r.n.toLowerCase();
    const c = r.c[Number(by.slice(1))];
    const v = c && (by[0] === 'p' ? c.p : c.q);
    return v === undefined || v === null ? Infinity : -v;
  }
  function update() {
    const q = search.value.trim().toLowerCase();
    const by = sort.value;
    view = data.rows.map((_, i) => i).filter(i => matches(data.rows[i], q));
    view.sort((a, b) => { const x = key(a, by), y = key(b, by); return x < y ? -1 : x > y ? 1 : a - b; });
    redraw();
  }
  const links = () => Array.from(container.querySelectorAll('a.open'));
  function open(index) {
    const all = links();
    if (!all.length) return;
    current = (index + all.length) % all.length;
    const link = all[current];
    const cell = data.rows[Number(link.closest('.row').dataset.row)].c[Number(link.dataset.column)];
    big.src = showAlpha && cell.a ? cell.a : cell.s;
    big.alt = link.querySelector('img').alt;
    caption.textContent = big.alt + (showAlpha && cell.a ? ' (alpha)' : '');
    viewer.hidden = false;
    document.getElementById('close').focus();
  }
  function close() { viewer.hidden = true; const all = links(); if (all[current]) all[current].focus(); }

  search.addEventListener('input', update);
  sort.addEventListener('change', update);
  container.addEventListener('click', event => {
    const link = event.target.closest('a.open');
    if (!link) return;
    event.preventDefault();
    open(links().indexOf(link));
  });
  container.addEventListener('keydown', event => {
    if (event.key === 'Enter' && event.target.classList.contains('row')) {
      const link = event.target.querySelector('a.open');
      if (link) open(links().indexOf(link));
    }
  });
  document.getElementById('close').addEventListener('click', close);
  viewer.addEventListener('click', event => { if (event.target === viewer) close(); });
  document.addEventListener('keydown', event => {
    if (!viewer.hidden) {
      if (event.key === 'Escape') close();
      else if (event.key === 'ArrowRight') open(current + 1);
      else if (event.key === 'ArrowLeft') open(current - 1);
      else if (event.key === 'a') { showAlpha = !showAlpha; open(current); }
      return;
    }
    if (event.key === '/' && document.activeElement !== search) { event.preventDefault(); search.focus(); }
  });
  // The first screenful now; the other rows after the load event, in chunks
  // while the browser is idle (drawing them earlier held the load event back
  // by up to 2 s for 1000 rows on two cores). Search and sort redraw the
  // whole view at once, so they never wait for the chunks.
  draw(FIRST);
  if (document.readyState === 'complete') drawRest();
  else window.addEventListener('load', () => (window.requestIdleCallback || setTimeout)(drawRest));

  // `index.html#selftest`: drive search, every sort order and the viewer
  // through the DOM, and write what happened into #selftest (headless checks).
  if (location.hash === '#selftest') {
    window.addEventListener('load', () => {
      const nav = performance.getEntriesByType('navigation')[0];
      // Headless Chromium may read the DOM as soon as the load event has been
      // handled, so the whole test runs inside the handler: rows still waiting
      // for an idle moment are drawn now.
      if (!window.classvizReady) { draw(view.length); window.classvizReady = true; }
      const result = { rows: data.rows.length, drawn: container.children.length,
        dom_content_loaded_ms: Math.round(nav.domContentLoadedEventEnd), load_ms: Math.round(nav.loadEventStart),
        all_rows_ms: Math.round(performance.now()) };
      const first = data.rows[0];
      const word = first ? (first.n.split(' ').slice(first.i === null ? 0 : 1).join(' ') || first.n).toLowerCase() : '';
      search.value = word; search.dispatchEvent(new Event('input'));
      const shown = Array.from(container.children);
      result.search = { query: word, shown: shown.length,
        all_match: shown.every(row => matches(data.rows[Number(row.dataset.row)], word)) };
      search.value = ''; search.dispatchEvent(new Event('input'));
      result.cleared = container.children.length;
      result.sort = {};
      for (const option of sort.options) {
        sort.value = option.value; sort.dispatchEvent(new Event('change'));
        const keys = Array.from(container.children).map(row => key(Number(row.dataset.row), option.value));
        result.sort[option.value] = keys.length === data.rows.length && keys.every((v, i) => i === 0 || keys[i - 1] <= v);
      }
      open(0); result.viewer_open = !viewer.hidden && big.getAttribute('src') !== null; close();
      result.viewer_closed = viewer.hidden;
      const out = document.getElementById('selftest');
      out.textContent = JSON.stringify(result);
      out.hidden = false;
    });
  }
})();
