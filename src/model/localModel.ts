import { IAgentStatus, IDownload } from './events';

/** The part of the REST API a download needs. */
export interface IDownloadAPI {
  status(): Promise<IAgentStatus>;
  downloadLocalModel(): Promise<IDownload>;
  localModelDownload(): Promise<IDownload | null>;
}

/**
 * Downloads the server's local model, the person having asked: starts the download, reports
 * its progress every `intervalMs` (asking for the download alone) until it has ended, then
 * resolves to the server's status, which says whether the model is ready.
 */
export async function downloadLocalModel(
  api: IDownloadAPI,
  report: (download: IDownload) => void,
  intervalMs = 1000
): Promise<IAgentStatus> {
  let download: IDownload | null = await api.downloadLocalModel();
  while (download?.state === 'running') {
    report(download);
    await new Promise(resolve => setTimeout(resolve, intervalMs));
    download = await api.localModelDownload();
  }
  if (download) {
    report(download);
  }
  return api.status();
}
