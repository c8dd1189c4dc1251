import { KernelSpec } from '@jupyterlab/services';

/**
 * Whether a kernelspec runs its kernels in a sandbox, by the rule the server applies: it selects
 * the Docker sandbox provisioner, or declares its kernels isolated (`notebook_agent.sandboxed`).
 */
export function isSandbox(spec: KernelSpec.ISpecModel | undefined): boolean {
  const metadata = (spec?.metadata ?? {}) as {
    kernel_provisioner?: { provisioner_name?: string };
    notebook_agent?: { sandboxed?: boolean };
  };
  return (
    metadata.kernel_provisioner?.provisioner_name === 'docker-sandbox' ||
    metadata.notebook_agent?.sandboxed === true
  );
}

/**
 * The kernel a notebook without kernel metadata should start: the server's default kernelspec
 * where it is a sandbox (the server makes the sandbox the default where it can run), so that
 * no dialog offers an unsandboxed kernel first; null to leave JupyterLab's choice as it is.
 */
export function sandboxByDefault(
  specs: KernelSpec.ISpecModels | null | undefined
): string | null {
  const name = specs?.default;
  return name && isSandbox(specs.kernelspecs[name]) ? name : null;
}
