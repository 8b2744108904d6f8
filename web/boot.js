/*
 * Loads the page's ES modules (a classic script on purpose).
 *
 * Mosquitto 2.0's http_dir sends files without a Content-Type, and browsers refuse a module
 * script that does not come as JavaScript. Classic scripts are exempt, so this one fetches each
 * module listed in the page's <script type="application/json" id="modules"> (bare name ->
 * relative URL), hands it to the browser as a blob: URL typed text/javascript, installs an
 * import map from the names to those URLs, and imports the entry module. The modules import
 * one another by those bare names, so they load the same way under any web server (a relative
 * import could not work: a blob: URL is no base to resolve one against). The page's own modules
 * are named #app/..., the form of package.json's "imports", so Node resolves the same names to
 * the same files and the modules run unchanged under node --test.
 */
(function boot() {
  'use strict';

  var script = document.currentScript;
  var entry = script.getAttribute('data-entry');

  function fail(error) {
    var box = document.getElementById('boot-error');
    if (box) {
      box.hidden = false;
      box.textContent = 'The chat could not start: ' + (error && error.message ? error.message : error);
    }
    if (window.console) console.error(error);
  }

  function load(name, url) {
    return fetch(url, { cache: 'no-cache' }).then(function (response) {
      if (!response.ok) throw new Error(url + ': HTTP ' + response.status);
      return response.text();
    }).then(function (source) {
      // sourceURL keeps the real file name in stack traces and the developer tools.
      var absolute = new URL(url, document.baseURI).href;
      var blob = new Blob([source, '\n//# sourceURL=' + absolute + '\n'], { type: 'text/javascript' });
      return [name, URL.createObjectURL(blob)];
    });
  }

  try {
    var modules = JSON.parse(document.getElementById('modules').textContent);
    Promise.all(Object.keys(modules).map(function (name) {
      return load(name, modules[name]);
    })).then(function (pairs) {
      var imports = {};
      pairs.forEach(function (pair) { imports[pair[0]] = pair[1]; });
      var map = document.createElement('script');
      map.type = 'importmap';
      map.textContent = JSON.stringify({ imports: imports });
      document.head.appendChild(map);
      return import(entry);
    }).catch(fail);
  } catch (error) {
    fail(error);
  }
}());
