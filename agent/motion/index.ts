/** The motion/change gate: skip frames whose region did not change since the last classified one. */
export { type GateVerdict, MotionGate, type MotionGateOptions } from './gate';
export { meanAbsDiff, sameRegion, type TinyGray, tinyGray } from './tiny-gray';
