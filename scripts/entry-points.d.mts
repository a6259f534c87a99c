/** See entry-points.mjs. */
export declare const SOURCE_ENTRY_POINTS: readonly string[];
