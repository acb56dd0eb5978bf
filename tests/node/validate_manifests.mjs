// Validates Kubernetes manifests (e.g. `helm template` output) against the Kubernetes API
// schemas, with the maintained kubernetes-models package (and its Prometheus Operator models
// for ServiceMonitor). Every document must be a known kind and pass its schema.
//   node validate_manifests.mjs FILE...
// Prints {"checked": N, "kinds": {...}}; exits 1 listing the problems.
import fs from 'node:fs';
import yaml from 'js-yaml';

const problems = [];
const kinds = {};
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((d) => d);
  for (const doc of docs) {
    const where = `${file}: ${doc.kind ?? '?'} ${doc.metadata?.name ?? '?'}`;
    if (!doc.apiVersion || !doc.kind) {
      problems.push(`${where}: no apiVersion or kind`);
      continue;
    }
    const [group, version] = doc.apiVersion.includes('/')
      ? doc.apiVersion.split('/') : ['', doc.apiVersion];
    const module = group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${doc.kind}`
      : `kubernetes-models/${group ? `${group}/` : ''}${version}/${doc.kind}`;
    let Model;
    try {
      Model = (await import(module))[doc.kind];
    } catch (e) {
      problems.push(`${where}: no schema for ${doc.apiVersion} ${doc.kind} (${e.message})`);
      continue;
    }
    try {
      new Model(doc).validate();
      checked += 1;
      kinds[doc.kind] = (kinds[doc.kind] ?? 0) + 1;
    } catch (e) {
      problems.push(`${where}: ${e.message}`);
    }
  }
}
if (problems.length > 0) {
  console.error(problems.slice(0, 20).join('\n'));
  process.exit(1);
}
console.log(JSON.stringify({ checked, kinds }));
