import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, LOCAL_PSL_VERSION, policyProblem, rootDomainOf } from '../../src/model/root-domain.js';

const withPrivate = { allowPrivateDomains: true };
const icannOnly = { allowPrivateDomains: false };

describe('root domain (DETECTION.md section 3)', () => {
  it.each([
    ['www.example.com', 'example.com'],
    ['WWW.Example.COM', 'example.com'],
    ['www.example.com.', 'example.com'],
    ['  a.b.example.co.uk ', 'example.co.uk'],
    ['evil.github.io', 'evil.github.io'],
    ['x.azurewebsites.net', 'x.azurewebsites.net'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['BÜCHER.example.', 'xn--bcher-kva.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['mail.例え.jp', 'xn--r8jz45g.jp'],
  ])('%s -> %s with private suffixes honoured', (host, root) => {
    expect(rootDomainOf(host, withPrivate)).toMatchObject({ ok: true, rootDomain: root });
  });

  it('without private suffixes github.io hosts share github.io', () => {
    expect(rootDomainOf('evil.github.io', icannOnly)).toMatchObject({ ok: true, rootDomain: 'github.io' });
  });

  it.each([
    ['', 'empty'],
    ['203.0.113.9', 'ip-literal'],
    ['2001:db8::1', 'ip-literal'],
    ['[2001:db8::1]', 'ip-literal'],
    ['localhost', 'single-label'],
    ['intranet.', 'single-label'],
    ['nas.local', 'internal-name'],
    ['x.y.internal', 'internal-name'],
    ['router.lan', 'internal-name'],
    ['tv.home.arpa', 'internal-name'],
    ['dc1.corp', 'internal-name'],
    ['a..b.com', 'invalid-name'],
    ['co.uk', 'no-registrable-domain'],
  ])('%s is refused (%s)', (host, reason) => {
    expect(rootDomainOf(host, withPrivate)).toEqual({ ok: false, reason });
  });

  it('honours configured internal domains', () => {
    expect(rootDomainOf('git.acme.example', withPrivate, ['acme.example'])).toEqual({ ok: false, reason: 'internal-name' });
    expect(rootDomainOf('git.acme.example', withPrivate, [])).toMatchObject({ ok: true });
  });

  it('accepts its own policy and refuses a list it cannot apply', () => {
    expect(policyProblem(DEFAULT_POLICY)).toBeNull();
    expect(DEFAULT_POLICY.pslVersion).toBe(LOCAL_PSL_VERSION);
    expect(policyProblem({ allowPrivateDomains: true, pslVersion: 'tldts@1.0.0' })).toMatch(/not compatible/);
    expect(policyProblem({ allowPrivateDomains: true, pslVersion: 'psl-2019' })).toMatch(/unknown Public Suffix List/);
  });
});
