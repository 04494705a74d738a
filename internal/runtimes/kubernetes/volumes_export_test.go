package kubernetes

// VolumeFailure is what Start makes of a Pod the scheduler could not place (final: its wait ended).
var VolumeFailure = volumeFailure
