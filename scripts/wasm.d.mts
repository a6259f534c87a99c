/** Types for scripts/wasm.mjs, imported by test/protocol/line-scan.test.ts. */
export declare const WAT_PATH: string;
export declare const MODULE_PATH: string;
export declare function lineScanModuleSource(): Promise<string>;
