// Public API of farcall.
export * from './errors';
export { runProgram, RunOptions, RunResult, RunStats, EntryFlavor } from './run';
export { doctor, DoctorReport, DoctorCheck } from './doctor';
export { RequestPool, RequestPoolOptions, RequestPoolStats, RequestEvent, ResetEvent, FailureEvent, ResetKind, GateKind, SnapshotPoolOptions } from './pool';
export { SnapshotInfo } from './snapshot';
export { LatencySummary } from './stats';
export { vmStock, VmStockStats } from './vmstock';
export {
  Backend, BackendOptions, BackendStats, BackendEvents, CallOptions, BackendCallEvent, BackendFaultEvent, BackendRestoreEvent,
  BackendOutputEvent, BackendRestartEvent, BackendSnapshotEvent, SnapshotBackendOptions,
} from './backend';
export { Broker, BrokerEvents, BrokerStats, PoolReport } from './broker';
export { BrokerConfig, BackendConfig, PoolConfig, validateConfig, loadConfigFile } from './config';
export { RestartPolicy } from './backend';
export { serveHttp, HttpFront } from './http';
