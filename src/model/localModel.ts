import { IAgentStatus } from './events';

/** The part of the REST API a download needs. */
export interface IDownloadAPI {
  status(): Promise<IAgentStatus>;
  downloadLocalModel(): Promise<unknown>;
}

/**
 * Downloads the server's local model, the person having asked: starts the download, then
 * reports the server's status every `intervalMs` until the download has ended. Resolves to
 * the last status (the download done or failed).
 */
export async function downloadLocalModel(
  api: IDownloadAPI,
  report: (status: IAgentStatus) => void,
  intervalMs = 1000
): Promise<IAgentStatus> {
  await api.downloadLocalModel();
  for (;;) {
    const status = await api.status();
    report(status);
    if (status.local_model?.download?.state !== 'running') {
      return status;
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs));
  }
}
