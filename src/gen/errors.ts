// Errors of the code generator. The message is the whole story (file:line first where known).
export class GenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GenError';
  }
}
