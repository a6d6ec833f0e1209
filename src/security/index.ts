export { COMPONENTS, DEFAULT_ROLE_PREFIX, applyRoles, componentGrants, etcdctlCommands, roleName, type Access, type AppliedRole, type Component, type Grant } from './roles.js';
export { EtcdAuthError, EtcdPermissionError, probeKey, probePermissions, type ProbeTarget } from './probe.js';
export { EtcdTlsError, certificateCommonName, checkClientCertificate, describeTlsFailure, tlsPreflight, type EtcdTlsConfig } from './tls.js';
export { InsecureFileModeError, SecretFileError, checkSecretFileMode, readPasswordFile } from './files.js';
export { checkEtcdAccess, etcdIdentity, type CheckAccessOptions, type EtcdAccessConfig } from './access.js';
