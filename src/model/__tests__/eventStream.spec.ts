import { ServerConnection } from '@jupyterlab/services';

import { RunEvent } from '../events';
import { RunEventStream } from '../eventStream';
import { RunModel } from '../runModel';

/** Just enough of a WebSocket; the test plays the server's side. */
class FakeSocket {
  constructor(readonly url: string) {}

  readyState: number = WebSocket.CONNECTING;
  closedByClient = false;
  closeCode: number | undefined = undefined;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;

  close(code?: number): void {
    this.closedByClient = true;
    this.closeCode = code;
    this.readyState = WebSocket.CLOSED;
  }

  /** The `from` the client asked for. */
  get from(): number {
    return Number(new URL(this.url).searchParams.get('from'));
  }

  open(): void {
    this.readyState = WebSocket.OPEN;
    this.onopen?.(new Event('open'));
  }

  send(data: unknown): void {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    this.onmessage?.(new MessageEvent('message', { data: text }));
  }

  /** The connection ends without the client asking (a drop, or a refused upgrade). */
  drop(): void {
    this.readyState = WebSocket.CLOSED;
    this.onclose?.(new CloseEvent('close', { code: 1006 }));
  }
}

/** The server's log of one run. */
const LOG: RunEvent[] = [
  {
    seq: 0,
    type: 'run_started',
    run_id: 'run-1',
    task: 'Plot',
    model: 'm',
    max_steps: 5,
    execution: 'auto',
    conversation_id: 'conversation-1'
  },
  { seq: 1, type: 'step', step: 1, max_steps: 5 },
  { seq: 2, type: 'message_delta', text: 'One, ' },
  { seq: 3, type: 'message_delta', text: 'two, ' },
  { seq: 4, type: 'message_delta', text: 'three.' }
];

const settings = ServerConnection.makeSettings({
  baseUrl: 'http://localhost:8888/lab-base/',
  wsUrl: 'ws://localhost:8888/lab-base/',
  token: 'secret-token',
  appendToken: true
});

function setUp(options: Partial<RunEventStream.IOptions> = {}) {
  const sockets: FakeSocket[] = [];
  const model = new RunModel();
  const applied: number[] = [];
  model.changed.connect((_, event) => applied.push(event.seq));
  const stream = new RunEventStream({
    runId: 'run-1',
    model,
    settings,
    makeSocket: url => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket as unknown as WebSocket;
    },
    ...options
  });
  const last = () => sockets[sockets.length - 1];
  /** Accepts the latest connection and sends the log from its `from` up to `until`. */
  const serve = (until = LOG.length) => {
    const socket = last();
    socket.open();
    LOG.slice(socket.from, until).forEach(event => socket.send(event));
  };
  return { sockets, model, applied, stream, last, serve };
}

describe('RunEventStream', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });

  afterEach(() => {
    jest.useRealTimers();
  });

  it('subscribes from the first event, with its role and the token', () => {
    const { sockets, stream } = setUp({ role: 'writer' });
    expect(sockets.map(socket => socket.url)).toEqual([
      'ws://localhost:8888/lab-base/notebook-agent/runs/run-1/events?from=0&role=writer&token=secret-token'
    ]);
    expect(stream.status).toBe('connecting');
    expect(stream.connected).toBe(false);
    stream.dispose();
  });

  it('leaves the token out where the settings say not to append it', () => {
    const { last, stream } = setUp({
      settings: ServerConnection.makeSettings({
        wsUrl: 'ws://example.org/',
        token: 'secret-token',
        appendToken: false
      })
    });
    expect(last().url).toBe(
      'ws://example.org/notebook-agent/runs/run-1/events?from=0&role=viewer'
    );
    stream.dispose();
  });

  it('opens the settings’ WebSocket when no factory is given', () => {
    const opened: string[] = [];
    class SettingsSocket extends FakeSocket {
      constructor(url: string) {
        super(url);
        opened.push(url);
      }
    }
    const stream = new RunEventStream({
      runId: 'run 1',
      model: new RunModel(),
      settings: {
        ...settings,
        WebSocket: SettingsSocket as unknown as typeof WebSocket
      }
    });
    expect(opened).toEqual([
      'ws://localhost:8888/lab-base/notebook-agent/runs/run%201/events?from=0&role=viewer&token=secret-token'
    ]);
    stream.dispose();
  });

  it('applies each event and says when it is connected', () => {
    const { model, stream, serve } = setUp();
    const statuses: RunEventStream.Status[] = [];
    stream.connectionChanged.connect((_, status) => statuses.push(status));
    serve();
    expect(stream.connected).toBe(true);
    expect(statuses).toEqual(['connected']);
    expect(model.lastSeq).toBe(4);
    expect(model.messages).toEqual([{ step: 1, text: 'One, two, three.' }]);
    stream.dispose();
  });

  it('reconnects after a drop from the event after the last applied', () => {
    const { sockets, model, applied, stream, last, serve } = setUp();
    const statuses: RunEventStream.Status[] = [];
    stream.connectionChanged.connect((_, status) => statuses.push(status));
    serve(3);
    last().drop();
    expect(stream.status).toBe('reconnecting');

    jest.advanceTimersByTime(249);
    expect(sockets).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
    expect(last().from).toBe(3);

    serve();
    expect(applied).toEqual([0, 1, 2, 3, 4]);
    expect(model.messages[0].text).toBe('One, two, three.');
    expect(statuses).toEqual(['connected', 'reconnecting', 'connected']);
    stream.dispose();
  });

  it('applies an event it receives twice once', () => {
    const { applied, stream, last, serve } = setUp();
    serve(3);
    last().send(LOG[2]);
    last().send(LOG[1]);
    last().send(LOG[3]);
    expect(applied).toEqual([0, 1, 2, 3]);
    stream.dispose();
  });

  it('skips what a reconnection replays that it has already', () => {
    const { applied, stream, last, serve } = setUp();
    serve(4);
    last().drop();
    jest.advanceTimersByTime(250);
    last().open();
    LOG.forEach(event => last().send(event));
    expect(applied).toEqual([0, 1, 2, 3, 4]);
    stream.dispose();
  });

  it('subscribes again from the missing event after a gap', () => {
    const { sockets, applied, stream, last, serve } = setUp();
    serve(2);
    last().send(LOG[3]);
    expect(sockets[0].closedByClient).toBe(true);
    expect(stream.status).toBe('reconnecting');
    jest.advanceTimersByTime(250);
    expect(last().from).toBe(2);
    serve();
    expect(applied).toEqual([0, 1, 2, 3, 4]);
    stream.dispose();
  });

  it('closes the socket on dispose and does not reconnect', () => {
    const { sockets, stream, last, serve } = setUp();
    const statuses: RunEventStream.Status[] = [];
    stream.connectionChanged.connect((_, status) => statuses.push(status));
    serve(2);
    stream.dispose();
    expect(sockets[0].closedByClient).toBe(true);
    expect(statuses).toEqual(['connected', 'disposed']);
    expect(stream.isDisposed).toBe(true);

    last().drop();
    jest.runAllTimers();
    expect(sockets).toHaveLength(1);
  });

  it('says it handed over when it closes for a notebook that stays open', () => {
    const { sockets, stream, serve } = setUp();
    serve(2);
    stream.handOver();
    expect(sockets[0].closeCode).toBe(4000);
    expect(stream.isDisposed).toBe(true);
  });

  it('closes normally otherwise', () => {
    const { sockets, stream, serve } = setUp();
    serve(2);
    stream.dispose();
    expect(sockets[0].closeCode).toBe(1000);
  });

  it('stops a pending reconnection on dispose', () => {
    const { sockets, stream, last, serve } = setUp();
    serve(2);
    last().drop();
    stream.dispose();
    jest.runAllTimers();
    expect(sockets).toHaveLength(1);
  });

  it('waits longer after each failed attempt, then gives up', () => {
    const { sockets, stream, last } = setUp();
    const failures: Error[] = [];
    stream.failed.connect((_, error) => failures.push(error));
    const waits: number[] = [];
    for (let attempt = 1; attempt < 10; attempt++) {
      last().drop();
      const count = sockets.length;
      let waited = 0;
      while (sockets.length === count) {
        jest.advanceTimersByTime(250);
        waited += 250;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([
      500, 1000, 2000, 4000, 5000, 5000, 5000, 5000, 5000
    ]);
    expect(failures).toEqual([]);

    last().drop();
    expect(stream.status).toBe('failed');
    expect(failures).toHaveLength(1);
    expect(failures[0].message).toMatch(/run-1/);
    jest.runAllTimers();
    expect(sockets).toHaveLength(10);
    stream.dispose();
  });

  it('counts the failed attempts from the last connection that opened', () => {
    const { sockets, stream, last } = setUp();
    for (let attempt = 1; attempt < 10; attempt++) {
      last().drop();
      jest.runOnlyPendingTimers();
    }
    last().open();
    last().drop();
    jest.advanceTimersByTime(250);
    expect(sockets).toHaveLength(11);
    expect(stream.status).toBe('reconnecting');
    stream.dispose();
  });

  it('gives up on a message that is not an event', () => {
    const { sockets, stream, last, serve } = setUp();
    const failures: Error[] = [];
    stream.failed.connect((_, error) => failures.push(error));
    serve(2);
    last().send('<html>Bad gateway</html>');
    expect(stream.status).toBe('failed');
    expect(failures).toHaveLength(1);
    expect(sockets[0].closedByClient).toBe(true);
    last().send({ type: 'step' });
    jest.runAllTimers();
    expect(sockets).toHaveLength(1);
    stream.dispose();
  });
});
