// The process's stock of retired VMs. Asking KVM for a VM costs time that grows with every VM and
// mapping already in the process (the kernel locks each mapping to register the VM's MMU
// notifier), so VMs of closed pools, replaced forks and finished programs are kept, without their
// memory, and the next VM made takes one of them (docs/architecture.md, "VM reuse").
import { InvalidArgumentError } from './errors';
import { native } from './native';

export interface VmStockStats {
  /** How many retired VMs are kept at most (FARCALL_VM_STOCK, default 64; 0: no reuse). */
  max: number;
  /** Retired VMs waiting now. */
  idle: number;
  /** VMs this process asked KVM for. */
  created: number;
  /** VMs made from a retired one instead. */
  reused: number;
}

/** The stock's figures; with `max`, how many retired VMs are kept from now on (the surplus is closed). */
export function vmStock(options: { max?: number } = {}): VmStockStats {
  const { max } = options;
  if (max === undefined) return native().vmStock();
  if (!Number.isSafeInteger(max) || max < 0) throw new InvalidArgumentError('InvalidArgument', `vmStock: max must be a non-negative integer, got ${String(max)}`);
  return native().vmStock(max);
}
