// SPDX-License-Identifier: Apache-2.0
//
// A Spot VM Scale Set whose instances run Beethoven: every instance gets
// ../cloud-init.yaml as its custom data, which installs the beethoven
// package, writes /etc/default/beethoven (Azure mode, the subnet from IMDS)
// and the cluster secret, and starts the service. See ../README.md.
//
//   az deployment group create -g RG -f azure/bicep/spot-vmss.bicep \
//       -p @azure/bicep/spot-vmss.parameters.example.json
//
// No scheduledEventsProfile: the only eviction notice a Spot VM gets is the
// Preempt scheduled event (about 30 s), which IMDS delivers without any
// setting on the scale set. terminateNotificationProfile adds Terminate
// events for deletes and scale-in, but cannot be enabled on Spot instances,
// and osImageNotificationProfile is about reimages, not evictions.

targetScope = 'resourceGroup'

// --- the scale set -----------------------------------------------------------

@description('Location of every resource.')
param location string = resourceGroup().location

@description('Name of the scale set. Instances are named <vmssName>_<instance id>, the name IMDS and Scheduled Events use.')
@minLength(1)
@maxLength(64)
param vmssName string = 'beethoven-vmss'

@description('Host names are this prefix and a base-36 instance id; beethoven uses the host name as node_name.')
@minLength(1)
@maxLength(15)
param computerNamePrefix string = 'bt'

@description('VM size of every instance.')
param vmSize string = 'Standard_D2s_v5'

@description('Number of instances. Beethoven wants at least 3 for a Raft majority that survives one eviction.')
@minValue(0)
@maxValue(1000)
param instanceCount int = 3

@description('What Azure does with an evicted instance: Delete (gone, capacity drops, no quota used) or Deallocate (stopped, disks and private IP kept, quota still used; start it again by hand).')
@allowed([
  'Delete'
  'Deallocate'
])
param evictionPolicy string = 'Delete'

@description('"Try & restore": Azure tries to bring evicted instances back to instanceCount when capacity returns (not together with autoscale).')
param spotRestore bool = true

@description('Availability zones to spread the instances over, e.g. [\'1\', \'2\', \'3\']; empty: no zones.')
param zones array = []

@description('false allows more than 100 instances (several placement groups).')
param singlePlacementGroup bool = true

@description('OS image. Use the distribution the beethoven .deb was built for (the default: Debian 12, like the build machine).')
param imageReference object = {
  publisher: 'Debian'
  offer: 'debian-12'
  sku: '12-gen2'
  version: 'latest'
}

@description('Storage type of the OS disks.')
@allowed([
  'Standard_LRS'
  'StandardSSD_LRS'
  'Premium_LRS'
])
param osDiskType string = 'StandardSSD_LRS'

@description('Login user of every instance (password login is disabled).')
param adminUsername string = 'azureuser'

@description('SSH public key of adminUsername.')
param sshPublicKey string

// --- network -----------------------------------------------------------------

@description('Resource id of an existing subnet for the instances; empty: create a VNet and a subnet.')
param existingSubnetId string = ''

@description('Address space of the new VNet (not used with existingSubnetId).')
param vnetAddressPrefix string = '10.42.0.0/16'

@description('Address prefix of the instances\' subnet: the new subnet\'s, or that of existingSubnetId (the NSG rules need it). Beethoven scans this subnet for peers, so keep it small and for the scale set alone; a /24 is scanned in one round.')
param subnetAddressPrefix string = '10.42.0.0/24'

@description('Give a new subnet a NAT gateway, the instances\' way out to the package URL and Key Vault (they get no public IP).')
param createNatGateway bool = true

// --- beethoven ---------------------------------------------------------------

@description('cluster_name: nodes join only a cluster of the same name.')
@minLength(1)
@maxLength(63)
param clusterName string = 'beethoven'

@description('listener_port of every node; Raft uses the next port. The NSG opens both, to the subnet only.')
@minValue(1)
@maxValue(65534)
param listenerPort int = 3000

@description('https URL of the beethoven .deb (e.g. a blob with a read-only SAS token); empty: apt-get install beethoven from a repository added to ../cloud-init.yaml.')
param debUrl string

@description('SHA-256 of the .deb (64 hex digits); empty: not checked.')
param debSha256 string = ''

@description('Key Vault (in this resource group, RBAC authorization) holding the cluster secret, read by each instance with the scale set\'s managed identity. Recommended; empty: use clusterSecret.')
param keyVaultName string = ''

@description('Name of the cluster secret in keyVaultName.')
param keyVaultSecretName string = 'beethoven-cluster-secret'

@description('Give the scale set\'s identity the Key Vault Secrets User role on keyVaultName (needs Owner or User Access Administrator there); false: assign it yourself.')
param assignKeyVaultRole bool = true

@description('The cluster secret (16..1024 bytes, e.g. openssl rand -hex 32), when there is no Key Vault. It ends up in the custom data of every instance.')
@secure()
param clusterSecret string = ''

// --- derived values ----------------------------------------------------------

var raftPort = listenerPort + 1
var createVnet = empty(existingSubnetId)
var vnetName = '${vmssName}-vnet'
var subnetName = 'beethoven'
var subnetId = createVnet ? resourceId('Microsoft.Network/virtualNetworks/subnets', vnetName, subnetName) : existingSubnetId

// Built-in role "Key Vault Secrets User": read secret contents.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

// The custom data: ../cloud-init.yaml with its @@...@@ placeholders
// replaced, one step per placeholder. A single quote in the URL is
// percent-encoded, as the script quotes it with single quotes.
var cloudInit0 = loadTextContent('../cloud-init.yaml')
var cloudInit1 = replace(cloudInit0, '@@BEETHOVEN_DEB_URL@@', replace(debUrl, '\'', '%27'))
var cloudInit2 = replace(cloudInit1, '@@BEETHOVEN_DEB_SHA256@@', toLower(debSha256))
var cloudInit3 = replace(cloudInit2, '@@BEETHOVEN_CLUSTER_NAME@@', clusterName)
var cloudInit4 = replace(cloudInit3, '@@BEETHOVEN_LISTENER_PORT@@', string(listenerPort))
var cloudInit5 = replace(cloudInit4, '@@BEETHOVEN_KEYVAULT_NAME@@', keyVaultName)
var cloudInit6 = replace(cloudInit5, '@@BEETHOVEN_KEYVAULT_SECRET@@', empty(keyVaultName) ? '' : keyVaultSecretName)
var cloudInit7 = replace(cloudInit6, '@@BEETHOVEN_SECRET_B64@@', empty(keyVaultName) ? base64(clusterSecret) : '')
var customData = cloudInit7

// --- resources ---------------------------------------------------------------

// Beethoven's ports, from the subnet only. The default rules would also let
// the rest of the VNet in (AllowVnetInBound), so everything else is denied
// explicitly on these two ports. Nothing else is opened: the instances have
// no public IP, ssh comes from inside the VNet (a jump host or Bastion).
resource nsg 'Microsoft.Network/networkSecurityGroups@2024-03-01' = {
  name: '${vmssName}-nsg'
  location: location
  properties: {
    securityRules: [
      {
        name: 'beethoven-from-subnet'
        properties: {
          description: 'Beethoven beacons/heartbeats (listener_port) and Raft (the next port) between the scale set\'s instances'
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: subnetAddressPrefix
          sourcePortRange: '*'
          destinationAddressPrefix: subnetAddressPrefix
          destinationPortRanges: [
            string(listenerPort)
            string(raftPort)
          ]
        }
      }
      {
        name: 'beethoven-deny-others'
        properties: {
          description: 'No one outside the subnet reaches Beethoven\'s ports'
          priority: 110
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: '*'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRanges: [
            string(listenerPort)
            string(raftPort)
          ]
        }
      }
    ]
  }
}

resource natPublicIp 'Microsoft.Network/publicIPAddresses@2024-03-01' = if (createVnet && createNatGateway) {
  name: '${vmssName}-nat-ip'
  location: location
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource natGateway 'Microsoft.Network/natGateways@2024-03-01' = if (createVnet && createNatGateway) {
  name: '${vmssName}-nat'
  location: location
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: natPublicIp.id
      }
    ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-03-01' = if (createVnet) {
  name: vnetName
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: [
      {
        name: subnetName
        properties: {
          addressPrefix: subnetAddressPrefix
          networkSecurityGroup: {
            id: nsg.id
          }
          natGateway: createNatGateway ? {
            id: natGateway.id
          } : null
        }
      }
    ]
  }
}

resource vmss 'Microsoft.Compute/virtualMachineScaleSets@2024-07-01' = {
  name: vmssName
  location: location
  zones: empty(zones) ? null : zones
  sku: {
    name: vmSize
    tier: 'Standard'
    capacity: instanceCount
  }
  // System-assigned managed identity: the instances read the cluster
  // secret from Key Vault with it (IMDS token for https://vault.azure.net).
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    orchestrationMode: 'Uniform'
    // Overprovisioned extra VMs would boot, join the cluster, take roles and
    // then be deleted without notice: no overprovisioning.
    overprovision: false
    singlePlacementGroup: singlePlacementGroup
    upgradePolicy: {
      mode: 'Manual'
    }
    spotRestorePolicy: {
      enabled: spotRestore
      restoreTimeout: 'PT1H'
    }
    virtualMachineProfile: {
      priority: 'Spot'
      evictionPolicy: evictionPolicy
      billingProfile: {
        // -1: never evicted for price, only for capacity.
        maxPrice: -1
      }
      osProfile: {
        computerNamePrefix: computerNamePrefix
        adminUsername: adminUsername
        customData: base64(customData)
        linuxConfiguration: {
          disablePasswordAuthentication: true
          ssh: {
            publicKeys: [
              {
                path: '/home/${adminUsername}/.ssh/authorized_keys'
                keyData: sshPublicKey
              }
            ]
          }
        }
      }
      storageProfile: {
        imageReference: imageReference
        osDisk: {
          createOption: 'FromImage'
          caching: 'ReadWrite'
          managedDisk: {
            storageAccountType: osDiskType
          }
        }
      }
      networkProfile: {
        networkInterfaceConfigurations: [
          {
            name: '${vmssName}-nic'
            properties: {
              primary: true
              networkSecurityGroup: {
                id: nsg.id
              }
              ipConfigurations: [
                {
                  name: 'ipconfig1'
                  properties: {
                    primary: true
                    subnet: {
                      id: subnetId
                    }
                  }
                }
              ]
            }
          }
        ]
      }
    }
  }
  dependsOn: [
    vnet
  ]
}

// Only referenced as the scope of the role assignment below (no request is
// made for it); the fallback name keeps the reference well-formed when no
// vault is given and the assignment is skipped.
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: empty(keyVaultName) ? 'no-key-vault' : keyVaultName
}

resource keyVaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultName) && assignKeyVaultRole) {
  name: guid(keyVault.id, vmss.id, keyVaultSecretsUserRoleId)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: vmss.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// --- outputs -----------------------------------------------------------------

@description('Resource id of the scale set.')
output vmssId string = vmss.id

@description('Object id of the scale set\'s managed identity (for a Key Vault role assigned by hand).')
output principalId string = vmss.identity.principalId

@description('Subnet of the instances (the cluster_net that use_az_net finds).')
output instanceSubnetId string = subnetId
