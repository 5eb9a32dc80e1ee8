// The generator's version, written into the header of every generated file. Bump it when the
// generated code or the ABI changes.
export const GENERATOR_NAME = 'farcall-gen';
export const GENERATOR_VERSION = '0.1.0';
export const GENERATOR = `${GENERATOR_NAME} ${GENERATOR_VERSION}`;
