import { URLExt } from '@jupyterlab/coreutils';

import { ServerConnection } from '@jupyterlab/services';

/**
 * The URL namespace of the server extension's REST API.
 */
export const API_NAMESPACE = 'notebook-agent';

/**
 * Call the server extension's REST API.
 *
 * @param endPoint API end point under `{baseUrl}notebook-agent/`
 * @param init Initial values for the request
 * @param settings The server settings to use (JupyterLab's own by default)
 * @returns The response body interpreted as JSON
 * @throws ServerConnection.NetworkError when the server cannot be reached,
 *   ServerConnection.ResponseError when it answers with an error status: its message is the
 *   server's own sentence, shown to the person as it is (never the request's URL)
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const requestUrl = URLExt.join(settings.baseUrl, API_NAMESPACE, endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // Not JSON: keep the text, which may explain an error.
    }
  }

  if (!response.ok) {
    // The person reads the server's own sentence; the request is for the console.
    const said = data && typeof data === 'object' && data.message;
    const body = typeof data === 'string' ? data.slice(0, 200) : '';
    const message =
      said ||
      `the server answered ${response.status} (${body || response.statusText})`;
    console.warn(
      `${init.method ?? 'GET'} ${requestUrl} failed with ${response.status}: ${message}`
    );
    throw new ServerConnection.ResponseError(response, message);
  }

  return data;
}
