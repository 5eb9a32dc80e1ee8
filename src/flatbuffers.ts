// `farcall/flatbuffers`: the flatbuffers runtime farcall was built and tested with. Generated
// TypeScript stubs import it from here, so a project that uses them needs no flatbuffers
// dependency of its own and always gets the version its stubs were generated for.
export * from 'flatbuffers';
