import { afterEach, describe, expect, it } from 'vitest';
import { type ObservabilityServer, startObservabilityServer } from '../../../src/app/httpServer.js';

describe('startObservabilityServer', () => {
  let server: ObservabilityServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('serves /metrics, /healthz and /readyz (503 with the reason when not ready)', async () => {
    let ready = false;
    server = await startObservabilityServer({
      port: 0,
      host: '127.0.0.1',
      metrics: async () => ({ contentType: 'text/plain; version=0.0.4', body: 'x_total 1\n' }),
      readiness: () => ({ ready, reason: ready ? '2 leases held' : 'no lease cycle has completed yet' }),
    });
    const metrics = await fetch(`${server.url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4');
    expect(await metrics.text()).toBe('x_total 1\n');
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    let readyz = await fetch(`${server.url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.text()).toBe('no lease cycle has completed yet\n');
    ready = true;
    readyz = await fetch(`${server.url}/readyz`);
    expect(readyz.status).toBe(200);
    expect(await readyz.text()).toBe('2 leases held\n');
    expect((await fetch(`${server.url}/other`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('answers 500 when collecting metrics fails', async () => {
    server = await startObservabilityServer({
      port: 0,
      host: '127.0.0.1',
      metrics: async () => {
        throw new Error('collector broke');
      },
      readiness: () => ({ ready: true, reason: '' }),
    });
    const response = await fetch(`${server.url}/metrics`);
    expect(response.status).toBe(500);
    expect(await response.text()).toContain('collector broke');
  });

  it('fails to start on a port in use', async () => {
    server = await startObservabilityServer({
      port: 0,
      host: '127.0.0.1',
      metrics: async () => ({ contentType: 'text/plain', body: '' }),
      readiness: () => ({ ready: true, reason: '' }),
    });
    await expect(
      startObservabilityServer({
        port: server.port,
        host: '127.0.0.1',
        metrics: async () => ({ contentType: 'text/plain', body: '' }),
        readiness: () => ({ ready: true, reason: '' }),
      }),
    ).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });
});
