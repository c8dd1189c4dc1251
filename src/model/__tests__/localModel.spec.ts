import { IAgentStatus, IDownload } from '../events';
import { downloadLocalModel, IDownloadAPI } from '../localModel';

/** The server's side of a download: each time it is read, the download gets further. */
class DownloadingServer implements IDownloadAPI {
  constructor(private readonly steps: IDownload[]) {}

  asked = 0;
  reads = 0;
  statusCalls = 0;

  async downloadLocalModel(): Promise<IDownload> {
    this.asked += 1;
    return this.steps[0];
  }

  async localModelDownload(): Promise<IDownload> {
    this.reads += 1;
    return this.current;
  }

  async status(): Promise<IAgentStatus> {
    const download = this.current;
    this.statusCalls += 1;
    return {
      version: '0.1.0',
      model: {
        backend: 'llama-cpp',
        name: 'hf:o/r/m.gguf',
        base_url: null,
        api_key_set: false,
        source: 'server',
        problem: download.state === 'done' ? null : 'not downloaded yet'
      },
      local_model: {
        reference: 'hf:o/r/m.gguf',
        downloaded: download.state === 'done',
        size: 1_000_000,
        download
      },
      execution: 'auto',
      max_steps: 30,
      kernel: { name: 'python3-sandbox', sandboxed: true, problem: null },
      allow_unsandboxed: false,
      allow_model_setup: true
    };
  }

  private get current(): IDownload {
    return this.steps[Math.min(this.reads, this.steps.length - 1)];
  }
}

const step = (
  state: IDownload['state'],
  done: number,
  error: string | null = null
): IDownload => ({
  reference: 'hf:o/r/m.gguf',
  state,
  done,
  total: 100,
  error
});

describe('downloadLocalModel', () => {
  it('asks once, reports the progress, and ends with the model ready', async () => {
    const server = new DownloadingServer([
      step('running', 10),
      step('running', 60),
      step('done', 100)
    ]);
    const seen: number[] = [];
    const last = await downloadLocalModel(
      server,
      download => seen.push(download.done),
      1
    );
    expect(server.asked).toBe(1);
    expect(seen).toEqual([10, 60, 100]);
    expect(last.model.problem).toBeNull();
    expect(last.local_model?.downloaded).toBe(true);
  });

  it('ends on a failed download, with its error', async () => {
    const server = new DownloadingServer([
      step('running', 0),
      step('failed', 0, 'could not download hf:o/r/m.gguf: offline')
    ]);
    const last = await downloadLocalModel(server, () => undefined, 1);
    expect(last.local_model?.download?.error).toContain('offline');
    // Two reads of the download: the one that started it, and the one that saw it fail; then
    // the status once.
    expect(server.asked + server.reads).toBe(2);
    expect(server.statusCalls).toBe(1);
  });
});
