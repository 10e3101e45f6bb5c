/**
 * Upstream values that hold `secret` where a password (or a key pasted by mistake) would be, and
 * that no URL parser reads as the http(s) URL meant: each must be refused without the secret
 * appearing in the error, wherever that error is shown (factory, command line, reload log).
 */
export const MALFORMED_UPSTREAMS = (secret: string): string[] => [
  `htps:/user:${secret}@ampcode.com/`,
  `https:/ /user:${secret}@ampcode.com/`,
  `https:// user:${secret}@ampcode.com/`,
  `https://user:${secret}@ampcode .com/`,
  `https://user:${secret}@[ampcode.com]/`,
  `file:///user:${secret}@ampcode.com/`,
  `file://user:${secret}@ampcode.com/x`,
  `ampcode.com/user:${secret}@`,
  `user:${secret}@ampcode.com`,
  `//user:${secret}@ampcode.com/`,
  `https:user:${secret}@ampcode.com`,
  `https://user@${secret}@ampcode.com:99999/`,
  `${secret}`,
  `${secret}:x@ampcode.com`,
  `https://ampcode.com/${secret}?x`,
  `https://ampcode.com/#${secret}`,
  `javascript:alert("${secret}")`,
  ` https://user:${secret}@ampcode.com/\u0000`,
];
