// tinysse.js: placeholder, replaced by the shared-connection client module (issue 11).
export function subscribe() { throw new Error("not built yet"); }
