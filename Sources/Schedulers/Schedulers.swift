// Noise schedules, sigma spacings and samplers.
