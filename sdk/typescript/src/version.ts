/** The SDK's version, sent in its User-Agent (test/package.test.ts keeps it equal to package.json's). */
export const version = "0.1.0";
