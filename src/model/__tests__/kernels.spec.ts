import { KernelSpec } from '@jupyterlab/services';

import { isSandbox, sandboxByDefault } from '../kernels';

function spec(name: string, metadata: Record<string, unknown>) {
  return {
    name,
    display_name: name,
    language: 'python',
    argv: [],
    resources: {},
    metadata
  } as KernelSpec.ISpecModel;
}

const sandbox = spec('python3-sandbox', {
  kernel_provisioner: { provisioner_name: 'docker-sandbox' }
});
const declared = spec('pods', { notebook_agent: { sandboxed: true } });
const local = spec('python3', {});

describe('kernels', () => {
  it('tells a sandbox by its provisioner or its declaration', () => {
    expect(isSandbox(sandbox)).toBe(true);
    expect(isSandbox(declared)).toBe(true);
    expect(isSandbox(local)).toBe(false);
    expect(isSandbox(undefined)).toBe(false);
  });

  it('starts the default kernel without asking only where it is a sandbox', () => {
    const kernelspecs = { python3: local, 'python3-sandbox': sandbox };
    expect(sandboxByDefault({ default: 'python3-sandbox', kernelspecs })).toBe(
      'python3-sandbox'
    );
    expect(sandboxByDefault({ default: 'python3', kernelspecs })).toBeNull();
    expect(sandboxByDefault(null)).toBeNull();
  });
});
