import { createRequire } from 'node:module';

// Read once at start-up; package.json sits two folders above both src/ and dist/src/.
function readVersion(): string {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = require(candidate) as { name?: string; version?: string };
      if (pkg.name === 'rarecon' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next layout
    }
  }
  return '0.0.0';
}

export const PRODUCT_VERSION = readVersion();
