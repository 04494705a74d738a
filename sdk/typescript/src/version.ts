/** The SDK's version, sent in its User-Agent (kept equal to package.json's by the tests). */
export const version = "0.1.0";
