// Every error code farcall reports, once: FARCALL_ERROR(enum name, code string, meaning).
// The VMM's ErrorCode enum and error_code__name() are made from this list, the addon exports it
// (`errorCodes`), and test/errors.test.ts checks that src/errors.ts has a class for every code.
// Codes the VMM never raises itself (they come from the TypeScript layer) are listed too, so the
// list is the whole vocabulary.
FARCALL_ERROR(KvmUnavailable, "KvmUnavailable", "/dev/kvm missing, not permitted, or too old")
FARCALL_ERROR(KvmFailure, "KvmFailure", "an ioctl failed where it should not")
FARCALL_ERROR(NotElf, "NotElf", "not an ELF file")
FARCALL_ERROR(WrongArch, "WrongArch", "not an x86-64 executable")
FARCALL_ERROR(Dynamic, "DynamicallyLinked", "a dynamically linked program")
FARCALL_ERROR(CorruptElf, "CorruptElf", "truncated or inconsistent headers")
FARCALL_ERROR(TooBig, "TooBig", "the program does not fit the memory limit")
FARCALL_ERROR(WrongLayout, "WrongLayout", "linked for the other region (request vs backend)")
FARCALL_ERROR(GuestFault, "GuestFault", "CPU exception inside the guest")
FARCALL_ERROR(Timeout, "Timeout", "a time limit passed")
FARCALL_ERROR(MemoryLimit, "MemoryLimit", "the guest ran out of its memory")
FARCALL_ERROR(OutputLimit, "OutputLimit", "output or a response over its limit")
FARCALL_ERROR(BadState, "BadState", "API misuse")
FARCALL_ERROR(Protocol, "Protocol", "a guest broke the farcall protocol")
FARCALL_ERROR(InvalidArgument, "InvalidArgument", "a bad option, configuration field or name")
FARCALL_ERROR(Internal, "Internal", "a failure inside farcall")
FARCALL_ERROR(AddonUnavailable, "AddonUnavailable", "the native addon does not load (TypeScript)")
FARCALL_ERROR(Closed, "Closed", "the pool, backend or broker is closed (TypeScript)")
FARCALL_ERROR(RequestFailed, "RequestFailed", "farcall_fail(), or a host call's negative result")
FARCALL_ERROR(BackendFault, "BackendFault", "a host call hit a backend fault")
FARCALL_ERROR(BackendUnavailable, "BackendUnavailable", "the backend is restarting")
FARCALL_ERROR(SchemaError, "SchemaError", "a bad IDL schema (code generator)")
FARCALL_ERROR(Overloaded, "Overloaded", "a full queue: try again later")
