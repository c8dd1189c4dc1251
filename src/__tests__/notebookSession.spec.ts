import { ServerConnection } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import { AgentAPI } from '../model/api';
import { IRunInfo } from '../model/events';
import { NotebookSession } from '../notebookSession';

/** The run-event WebSockets the session opens: one per run it follows. */
const sockets: string[] = [];

class FakeSocket {
  constructor(readonly url: string) {
    sockets.push(url);
  }
  readyState: number = WebSocket.CONNECTING;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  close(): void {
    this.readyState = WebSocket.CLOSED;
  }
}

/** Just enough of a NotebookPanel: its path, its saves, its signals. */
function fakePanel(): any {
  const owner = {};
  return {
    disposed: new Signal(owner),
    sessionContext: { kernelChanged: new Signal(owner) },
    content: { node: document.createElement('div') },
    model: { sharedModel: {} },
    context: {
      path: 'analysis.ipynb',
      model: { dirty: false },
      saveState: new Signal(owner),
      save: async () => undefined,
      revert: async () => undefined
    }
  };
}

const RUN = {
  id: 'run-2',
  path: 'analysis.ipynb',
  state: 'running',
  events: 0
} as unknown as IRunInfo;

/** Settings whose fetch answers as the server would, and keeps each request's body. */
function fakeServer(): {
  settings: ServerConnection.ISettings;
  bodies: Record<string, unknown>;
} {
  const bodies: Record<string, unknown> = {};
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname.replace('/notebook-agent/', '')}`;
    if (request.method === 'POST') {
      bodies[route] = await request.json();
    }
    const answers: Record<string, unknown> = {
      'GET runs': { runs: [] },
      'GET conversation': { id: 'conversation-1', dropped_requests: 0 },
      'GET allowed-tools': { path: 'analysis.ipynb', tools: [] }
    };
    return new Response(JSON.stringify(answers[route] ?? RUN), {
      status: 200,
      headers: { 'Content-Type': 'application/json' }
    });
  };
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/',
    fetch: fetch as unknown as typeof window.fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket
  });
  return { settings, bodies };
}

describe('NotebookSession', () => {
  beforeEach(() => {
    sockets.length = 0;
  });

  beforeAll(() => {
    Object.defineProperty(document, 'hidden', {
      value: false,
      configurable: true
    });
  });

  it('starts and continues a run with the MCP servers the settings list at the time', async () => {
    const { settings, bodies } = fakeServer();
    let listed: Record<string, unknown> = { mine: { url: 'http://a/mcp' } };
    const session = new NotebookSession(
      fakePanel(),
      new AgentAPI(settings),
      () => listed
    );
    try {
      await session.start('do it', {});
      expect(bodies['POST runs']).toMatchObject({
        prompt: 'do it',
        mcp_servers: { mine: { url: 'http://a/mcp' } }
      });
      listed = {}; // the person took the server out of their settings since
      await session.continueRun(false);
      expect(bodies['POST runs/run-2/continue']).toEqual({ mcp_servers: {} });
    } finally {
      session.dispose();
    }
  });

  it('follows the run it starts once, though a look for runs started elsewhere finds it first', async () => {
    let started: (info: IRunInfo) => void = () => undefined;
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://localhost:8888/',
      WebSocket: FakeSocket as unknown as typeof WebSocket
    });
    const api = {
      settings,
      startRun: () => new Promise<IRunInfo>(resolve => (started = resolve)),
      runs: async () => [RUN], // the server has the run already, before startRun answers
      conversation: async () => ({ id: 'conversation-1', dropped_requests: 0 }),
      allowedTools: async () => []
    } as unknown as AgentAPI;
    const session = new NotebookSession(fakePanel(), api, () => ({}));
    try {
      const starting = session.start('do it', {});
      await new Promise(resolve => setTimeout(resolve, 0)); // the save, then startRun waits
      await session.followRunStartedElsewhere();
      started(RUN);
      await starting;
      expect(sockets).toHaveLength(1);
      expect(session.run?.runId).toBe('run-2');
    } finally {
      session.dispose();
    }
  });
});
