import { ServerConnection } from '@jupyterlab/services';

import { requestAPI } from '../request';

/**
 * Server settings whose fetch records each request and answers `response`.
 */
function fakeSettings(response: Response): {
  settings: ServerConnection.ISettings;
  requests: Request[];
} {
  const requests: Request[] = [];
  const fetch = jest.fn(
    async (input: RequestInfo | URL, init?: RequestInit) => {
      requests.push(new Request(input, init));
      return response;
    }
  );
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/lab-base/',
    token: 'secret-token',
    fetch: fetch as unknown as typeof window.fetch
  });
  return { settings, requests };
}

function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });
}

describe('requestAPI', () => {
  it('calls {baseUrl}notebook-agent/{endPoint} and parses the JSON answer', async () => {
    const status = { version: '0.1.0', execution: 'auto' };
    const { settings, requests } = fakeSettings(jsonResponse(status));

    const data = await requestAPI<typeof status>('status', {}, settings);

    expect(data).toEqual(status);
    expect(requests).toHaveLength(1);
    expect(requests[0].method).toBe('GET');
    // ServerConnection adds a cache-busting query string to a GET.
    const url = new URL(requests[0].url);
    expect(url.origin + url.pathname).toBe(
      'http://localhost:8888/lab-base/notebook-agent/status'
    );
    expect(requests[0].headers.get('Authorization')).toBe('token secret-token');
  });

  it('sends the method and body it is given', async () => {
    const { settings, requests } = fakeSettings(
      jsonResponse({ id: 'run-1' }, 201)
    );

    const data = await requestAPI<{ id: string }>(
      'runs',
      {
        method: 'POST',
        body: JSON.stringify({ path: 'a.ipynb', prompt: 'plot x' })
      },
      settings
    );

    expect(data).toEqual({ id: 'run-1' });
    expect(requests[0].method).toBe('POST');
    expect(await requests[0].json()).toEqual({
      path: 'a.ipynb',
      prompt: 'plot x'
    });
  });

  it("throws a ResponseError whose message is the server's own sentence", async () => {
    const { settings } = fakeSettings(
      jsonResponse({ message: 'no such run: nope' }, 404)
    );

    const call = requestAPI('runs/nope', {}, settings);

    await expect(call).rejects.toBeInstanceOf(ServerConnection.ResponseError);
    await expect(call).rejects.toThrow(/^no such run: nope$/);
  });

  it('keeps a non-JSON error body as the message', async () => {
    const { settings } = fakeSettings(
      new Response('Bad Gateway', { status: 502 })
    );

    await expect(requestAPI('status', {}, settings)).rejects.toThrow(
      /^the server answered 502 \(Bad Gateway\)$/
    );
  });

  it('throws a NetworkError when the server cannot be reached', async () => {
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://localhost:8888/',
      fetch: (() =>
        Promise.reject(
          new TypeError('Failed to fetch')
        )) as unknown as typeof window.fetch
    });

    await expect(requestAPI('status', {}, settings)).rejects.toBeInstanceOf(
      ServerConnection.NetworkError
    );
  });
});
